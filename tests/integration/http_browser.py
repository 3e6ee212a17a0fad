#!/usr/bin/python3
"""Loads basisnetd's live page in headless Chromium and checks what a viewer sees.

usage: http_browser.py URL SCREENSHOT.png [SECONDS [--saved-events]]

Drives Chromium over --remote-debugging-pipe (the DevTools protocol as NUL-terminated JSON
on fds 3 and 4; no extra Python modules): opens URL, reads the shown label every 0.25 s for
SECONDS (default 8), then takes a screenshot. Fails unless a label appeared and changed,
the picture loaded (the MJPEG stream decoded to a frame), a change event was listed, and the
screenshot is not blank (pixel standard deviation); with --saved-events, also unless a listed
change showed its saved picture (/events/NAME.jpg). Prints what it saw as one JSON line.
"""
import base64, io, json, os, shutil, subprocess, sys, tempfile, time

from PIL import Image, ImageStat

url, shot = sys.argv[1], sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 8.0
# --saved-events: the daemon has an events: section, so a listed change shows its saved picture
saved_events = '--saved-events' in sys.argv[4:]
exe = shutil.which('chromium') or shutil.which('chromium-browser')
if not exe:
    sys.exit('FAIL: chromium is not installed (apt-get install chromium; make deps)')

to_child_r, to_child_w = os.pipe()
from_child_r, from_child_w = os.pipe()
hi = [os.dup(fd) for fd in (to_child_r, from_child_w)]
profile = tempfile.mkdtemp(prefix='bn-chromium.')


def child_fds():
    os.dup2(hi[0], 3)
    os.dup2(hi[1], 4)


args = [exe, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
        '--disable-extensions', '--disable-background-networking', '--mute-audio',
        '--remote-debugging-pipe', f'--user-data-dir={profile}', '--window-size=1200,800',
        'about:blank']
# A home of its own: nothing read from or written to the caller's (CI runs as root, HOME may
# be unset or read-only).
env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=profile, XDG_CACHE_HOME=profile)
errlog = os.path.join(profile, 'stderr')
proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=open(errlog, 'w'), env=env,
                        preexec_fn=child_fds, pass_fds=(3, 4) + tuple(hi))


def die(why):
    try:
        tail = [l for l in open(errlog).read().splitlines() if 'dbus' not in l][-15:]
    except OSError:
        tail = []
    sys.exit('FAIL: ' + why + ''.join('\n    chromium: ' + l for l in tail))

for fd in (to_child_r, from_child_w, *hi):
    os.close(fd)
buf = b''
next_id = 0
deadline = time.time() + seconds + 40


def send(method, params=None, session=None):
    """Sends one command and returns its result (events in between are skipped)."""
    global buf, next_id
    next_id += 1
    msg = {'id': next_id, 'method': method, 'params': params or {}}
    if session:
        msg['sessionId'] = session
    os.write(to_child_w, json.dumps(msg).encode() + b'\0')
    while True:
        while b'\0' not in buf:
            if time.time() > deadline:
                die(f'no answer from chromium to {method}')
            d = os.read(from_child_r, 1 << 20)
            if not d:
                die(f'chromium closed the pipe during {method}')
            buf += d
        raw, buf = buf.split(b'\0', 1)
        m = json.loads(raw)
        if m.get('id') == next_id:
            if 'error' in m:
                die(f'{method}: {m["error"]}')
            return m['result']


def evaluate(expr, session):
    r = send('Runtime.evaluate', {'expression': expr, 'returnByValue': True}, session)
    return r.get('result', {}).get('value')


try:
    target = send('Target.createTarget', {'url': 'about:blank'})['targetId']
    session = send('Target.attachToTarget', {'targetId': target, 'flatten': True})['sessionId']
    send('Page.enable', session=session)
    send('Page.navigate', {'url': url}, session)
    seen = []
    t_end = time.time() + seconds
    while time.time() < t_end:
        v = evaluate("document.getElementById('label') && document.getElementById('label').textContent", session)
        if v and (not seen or seen[-1] != v):
            seen.append(v)
        time.sleep(0.25)
    state = evaluate("""JSON.stringify({
        picture: document.getElementById('pic').naturalWidth,
        changes: document.querySelectorAll('#changes li span.change').length,
        saved_pictures: [...document.querySelectorAll('#changes li a img')]
            .filter(i => i.complete && i.naturalWidth > 0).length,
        conn: document.getElementById('conn').textContent,
        camera: document.getElementById('camera').textContent,
        threshold: document.getElementById('threshold').textContent,
        stage: document.getElementById('stage').textContent})""", session)
    if not isinstance(state, str):
        die(f'the page did not load from {url} (no #pic element)')
    state = json.loads(state)
    png = base64.b64decode(send('Page.captureScreenshot', {'format': 'png'}, session)['data'])
    open(shot, 'wb').write(png)
    try:
        send('Browser.close')
    except SystemExit:
        pass
finally:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(profile, ignore_errors=True)

im = Image.open(io.BytesIO(png)).convert('L')
sd = ImageStat.Stat(im).stddev[0]
labels = [s for s in seen if s not in ('\u2026', '')]
report = {'labels': labels, 'screenshot_stddev': round(sd, 2), 'size': im.size, **state}
print(json.dumps(report))
problems = []
if not labels:
    problems.append('no label appeared')
elif len(set(labels)) < 2:
    problems.append(f'the label never changed ({labels[0]!r} for {seconds} s)')
if not state['picture']:
    problems.append('the picture did not load')
if state['changes'] < 1:
    problems.append('no change event listed')
if saved_events and state['saved_pictures'] < 1:
    problems.append('no listed change showed its saved picture (/events/NAME.jpg)')
if state['conn'] != 'live':
    problems.append(f'events connection: {state["conn"]}')
if sd < 8:
    problems.append(f'the screenshot looks blank (pixel stddev {sd:.1f})')
if problems:
    sys.exit('FAIL: ' + '; '.join(problems))
