#!/usr/bin/python3
"""Soak: basisnetd for SOAK_MINUTES on the looping sample clip under everything at once --
subscriber churn, a reader that never reads, a reload every minute, budget changes with
`basisnetctl set`, a mosquitto broker that goes away and comes back, a source file that is
truncated and restored -- while a reader that keeps up checks every label.

Asserts, after a warm-up (the first fifth of the run, at least 1 min):
  - RSS flat: the median of the last quarter of samples within 10% of the median of the
    first quarter after warm-up;
  - fd count flat: sampled between churn batches (no churn client open), the maximum of the
    last quarter no higher than that of the first quarter after warm-up plus 2 (the broker
    connection and the source's files come and go);
  - the keeping-up reader saw no seq gap without `lost` and no `lost`;
  - every reload succeeded, every `set` was answered, the daemon exited 0 on SIGTERM;
  - watchdog pings (WATCHDOG_USEC=10 s, as WatchdogSec=10) never more than 5 s apart.
Prints the figures; exit status 1 on a failed assertion.

Usage: BUILD=build bench/soak/soak.py MINUTES   (make soak SOAK_MINUTES=N)
"""
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BUILD = os.environ.get('BUILD', 'build')
BND = os.path.join(ROOT, BUILD, 'basisnetd')
CTL = os.path.join(ROOT, BUILD, 'basisnetctl')
MODEL = os.path.join(ROOT, 'models', 'fmnist-basisnet.bnm')
CLIP = os.path.join(ROOT, 'samples', 'fmnist-sample.mkv')
WATCHDOG_USEC = 10_000_000

minutes = float(sys.argv[1]) if len(sys.argv) > 1 else float(os.environ.get('SOAK_MINUTES', 10))
duration = minutes * 60
T = tempfile.mkdtemp(prefix='bn-soak.')
SOCK = os.path.join(T, 'd.sock')
stop = threading.Event()
errors = []
log_lock = threading.Lock()
# A reload checks the source: it would be (rightly) rejected while the clip is away, so a
# reload and a source flap never overlap.
source_lock = threading.Lock()
counts = {'reloads': 0, 'sets': 0, 'broker_outages': 0, 'source_flaps': 0, 'churn_clients': 0}


def note(msg):
    with log_lock:
        print('[%7.1f s] %s' % (time.monotonic() - t_start, msg), flush=True)


def error(msg):
    with log_lock:
        errors.append(msg)
    note('ERROR: ' + msg)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


PORT = free_port()
clip = os.path.join(T, 'clip.mkv')
shutil.copy(CLIP, clip)


def write_config(latency_ms):
    with open(os.path.join(T, 'd.yaml.new'), 'w') as f:
        f.write(f"""camera: soak
model: {MODEL}
log_level: info
source:
  kind: file
  path: {clip}
  loop: true
  fps: 30
  aspect: crop
  retry_initial_ms: 200
  retry_max_ms: 1000
budget:
  mode: mean
  latency_ms: {latency_ms}
publish:
  socket: {SOCK}
  mode: 0666
  max_clients: 64
  queue: 256
  change_frames: 3
mqtt:
  host: 127.0.0.1
  port: {PORT}
  qos: 1
  queue: 200
  keepalive: 5
  publish_labels: true
""")
    os.rename(os.path.join(T, 'd.yaml.new'), os.path.join(T, 'd.yaml'))


broker = None


def broker_start():
    global broker
    with open(os.path.join(T, 'broker.conf'), 'w') as f:
        f.write(f'listener {PORT} 127.0.0.1\nallow_anonymous true\n')
    broker = subprocess.Popen(['/usr/sbin/mosquitto', '-c', os.path.join(T, 'broker.conf')],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def broker_stop():
    global broker
    if broker:
        broker.terminate()
        broker.wait()
        broker = None


def ctl(*args, timeout=10):
    env = dict(os.environ, BASISNET_SOCKET=SOCK)
    return subprocess.run([CTL, '--timeout', '5'] + list(args), env=env, capture_output=True,
                          text=True, timeout=timeout)


# ---- watchdog: a NOTIFY_SOCKET of our own -------------------------------------------------
notify_path = os.path.join(T, 'notify')
nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
nsock.bind(notify_path)
nsock.settimeout(0.5)
pings = []


def notify_reader():
    while not stop.is_set():
        try:
            d = nsock.recv(4096).decode()
        except socket.timeout:
            continue
        if 'WATCHDOG=1' in d.split('\n'):
            pings.append(time.monotonic())


# ---- the reader that keeps up --------------------------------------------------------------
keeper = {'labels': 0, 'gaps': [], 'lost': 0, 'dropped_frames': 0, 'source': [], 'last_seq': None}


def keeper_reader():
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCK)
    s.settimeout(2)     # no label while the source is away: wake up to check `stop`
    buf = b''
    while not stop.is_set():
        if b'\n' not in buf:
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            if not d:
                if not stop.is_set():
                    error('keeper: the daemon closed the connection')
                return
            buf += d
            continue
        line, buf = buf.split(b'\n', 1)
        m = json.loads(line)
        if m['type'] == 'source':
            keeper['source'].append(m['state'])
        if 'lost' in m:
            keeper['lost'] += m['lost']
        if m['type'] != 'label':
            continue
        keeper['labels'] += 1
        keeper['dropped_frames'] += m['dropped_frames']
        last = keeper['last_seq']
        if last is not None and m['seq'] != last + 1 and 'lost' not in m:
            keeper['gaps'].append((last, m['seq']))
        keeper['last_seq'] = m['seq']


def stalled_reader():
    """Connects and never reads: only its own messages may be dropped."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCK)
    stop.wait()
    s.close()


# ---- the disturbances ------------------------------------------------------------------------
fd_samples = []     # (t, fds) between churn batches


def fds(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def churn():
    while not stop.wait(random.uniform(1.0, 3.0)):
        clients = []
        for _ in range(random.randint(1, 8)):
            try:
                c = socket.socket(socket.AF_UNIX)
                c.connect(SOCK)
                c.settimeout(2)
                if random.random() < 0.3:
                    c.sendall(b'{"cmd":"stats","id":1}\n')
                elif random.random() < 0.3:
                    c.sendall(b'{"cmd":"subscribe","labels":["Bag"],"changes":true}\n')
                clients.append(c)
                counts['churn_clients'] += 1
            except OSError as e:
                error('churn connect: %s' % e)
        time.sleep(random.uniform(0.2, 1.5))
        for c in clients:
            try:
                c.recv(65536)
            except OSError:
                pass
            c.close()
        time.sleep(0.3)     # the daemon sees the closes
        try:
            fd_samples.append((time.monotonic() - t_start, fds(daemon.pid)))
        except OSError:
            return          # the daemon is gone: the main loop reports it


def reloads():
    k = 0
    while not stop.wait(60):
        k += 1
        write_config(20 if k % 2 else 30)
        with source_lock:
            r = ctl('reload')
        counts['reloads'] += 1
        if r.returncode != 0:
            error('reload %d failed: %s %s' % (k, r.stdout, r.stderr))


def sets():
    while not stop.wait(random.uniform(5, 15)):
        r = ctl('set', 'budget-ms', '%.1f' % random.uniform(2, 40))
        counts['sets'] += 1
        if r.returncode != 0:
            error('set failed: %s %s' % (r.stdout, r.stderr))


def broker_flap():
    while not stop.wait(random.uniform(30, 50)):
        broker_stop()
        counts['broker_outages'] += 1
        if stop.wait(random.uniform(3, 12)):
            break
        broker_start()


def source_flap():
    while not stop.wait(random.uniform(40, 70)):
        with source_lock:
            counts['source_flaps'] += 1
            if random.random() < 0.5:
                with open(clip, 'w'):
                    pass            # truncated in place
            else:
                os.unlink(clip)     # removed
            stop.wait(random.uniform(2, 5))
            shutil.copy(CLIP, clip + '.new')
            os.rename(clip + '.new', clip)


# ---- run --------------------------------------------------------------------------------------
t_start = time.monotonic()
write_config(20)
broker_start()
env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(WATCHDOG_USEC),
           OPENBLAS_NUM_THREADS='1')
env.pop('WATCHDOG_PID', None)
dlog = open(os.path.join(T, 'daemon.log'), 'w')
daemon = subprocess.Popen([BND, '--config', os.path.join(T, 'd.yaml')], stdout=subprocess.DEVNULL,
                          stderr=dlog, env=env)


def leave_nothing_behind(*_):
    for p in (daemon, broker):
        if p and p.poll() is None:
            p.kill()
    sys.exit(1)


signal.signal(signal.SIGTERM, leave_nothing_behind)
signal.signal(signal.SIGINT, leave_nothing_behind)
threading.Thread(target=notify_reader, daemon=True).start()
for _ in range(200):
    if ctl('ping').returncode == 0:
        break
    time.sleep(0.05)
else:
    error('the daemon did not answer within 10 s')
    daemon.kill()
    sys.exit(1)
note('daemon pid %d, broker port %d, %s min, files in %s' % (daemon.pid, PORT, minutes, T))
threads = [threading.Thread(target=f, daemon=True)
           for f in (keeper_reader, stalled_reader, churn, reloads, sets, broker_flap, source_flap)]
for th in threads:
    th.start()
rss = []    # (t, kB)
next_report = 60
while time.monotonic() - t_start < duration:
    time.sleep(5)
    if daemon.poll() is not None:
        error('the daemon exited with %s' % daemon.returncode)
        break
    with open(f'/proc/{daemon.pid}/status') as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith('VmRSS:'))
    t = time.monotonic() - t_start
    rss.append((t, kb))
    if t >= next_report:
        next_report += 60
        note('rss %.1f MB, fds %s, labels %d, reloads %d, sets %d, broker outages %d, source flaps %d'
             % (kb / 1024, fd_samples[-1][1] if fd_samples else '?', keeper['labels'],
                counts['reloads'], counts['sets'], counts['broker_outages'], counts['source_flaps']))
stop.set()
st = ctl('stats')
stats = json.loads(st.stdout) if st.returncode == 0 else None
if daemon.poll() is None:
    daemon.send_signal(signal.SIGTERM)
    try:
        rc = daemon.wait(10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        rc = 'killed after 10 s'
    if rc != 0:
        error('exit status %s after SIGTERM' % rc)
broker_stop()
for th in threads:
    th.join(5)

# ---- verdict ----------------------------------------------------------------------------------
warm = max(60.0, duration / 5)


def quarter(samples, last):
    after = [v for t, v in samples if t >= warm]
    n = max(1, len(after) // 4)
    return after[-n:] if last else after[:n]


if len(rss) >= 8 and any(t >= warm for t, _ in rss):
    r0, r1 = statistics.median(quarter(rss, False)), statistics.median(quarter(rss, True))
    note('RSS after warm-up: %.1f MB -> %.1f MB (%+.1f%%), min %.1f, max %.1f MB'
         % (r0 / 1024, r1 / 1024, 100 * (r1 - r0) / r0, min(v for _, v in rss) / 1024,
            max(v for _, v in rss) / 1024))
    if r1 > r0 * 1.10:
        error('RSS grew more than 10%% after warm-up: %.1f -> %.1f MB' % (r0 / 1024, r1 / 1024))
else:
    error('too few RSS samples after warm-up (run at least 2 minutes)')
if len(fd_samples) >= 8 and any(t >= warm for t, _ in fd_samples):
    f0, f1 = max(quarter(fd_samples, False)), max(quarter(fd_samples, True))
    note('fds between churn batches after warm-up: max %d in the first quarter, %d in the last '
         '(all samples %d..%d)' % (f0, f1, min(v for _, v in fd_samples), max(v for _, v in fd_samples)))
    if f1 > f0 + 2:
        error('fd count grew after warm-up: %d -> %d' % (f0, f1))
else:
    error('too few fd samples after warm-up')
gaps = [b - a for a, b in zip(pings, pings[1:])]
if gaps:
    note('watchdog: %d pings, longest gap %.2f s (limit %.1f s)' % (len(pings), max(gaps),
                                                                    WATCHDOG_USEC / 2e6))
    if max(gaps) > WATCHDOG_USEC / 2e6:
        error('watchdog ping late: %.2f s between two pings' % max(gaps))
else:
    error('no watchdog pings')
note('keeper: %d labels, %d seq gaps without lost, %d lost, %d dropped_frames; source events %s'
     % (keeper['labels'], len(keeper['gaps']), keeper['lost'], keeper['dropped_frames'],
        ' '.join('%s:%d' % (s, keeper['source'].count(s)) for s in sorted(set(keeper['source'])))))
if keeper['gaps']:
    error('seq gaps without lost: %s' % keeper['gaps'][:5])
if keeper['lost']:
    error('the keeping-up reader lost %d messages' % keeper['lost'])
if keeper['labels'] < duration * 5:
    error('only %d labels in %.0f s' % (keeper['labels'], duration))
note('disturbances: %d reloads, %d sets, %d broker outages, %d source flaps, %d churn clients'
     % (counts['reloads'], counts['sets'], counts['broker_outages'], counts['source_flaps'],
        counts['churn_clients']))
if stats:
    fr, cl, mq = stats['frames'], stats['clients'], stats.get('mqtt', {})
    note('daemon stats: classified %d, dropped %d, results_dropped %d; clients accepted %d, '
         'lost_total %d; reload ok %d failed %d; mqtt connects %s dropped %s'
         % (fr['classified'], fr['dropped'], fr['results_dropped'], cl['accepted'], cl['lost_total'],
            stats['reload']['ok'], stats['reload']['failed'], mq.get('connects'), mq.get('dropped')))
if errors:
    note('FAILED: %d problems (daemon log: %s)' % (len(errors), os.path.join(T, 'daemon.log')))
    sys.exit(1)
shutil.rmtree(T, ignore_errors=True)
note('soak passed')
