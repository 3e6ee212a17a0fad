#!/usr/bin/python3
"""What the HTTP server and the event snapshots cost (docs/http.md#benchmarks).

usage: bench/http/run.py [--rounds N] [--window S] [--model M] [--out FILE]

Runs build/basisnetd (BUILD overrides) on the test source (ball, 640x480, 30 fps) and
measures, in interleaved rounds (the machine is shared: medians, with the range):

  off    daemon CPU without an http: section and with one (no client): HTTP off must cost
         nothing, so "on" minus "off" is what an idle server costs
  mjpeg  daemon CPU with 0 and with 10 /stream.mjpg viewers at 5 fps (curl), alternating on
         one daemon; per viewer = (10 viewers - 0) / 10; the parts the viewers got per second
  metrics /metrics answer time (a new connection per request, as Prometheus scrapes) with 0
         and with 64 socket subscribers connected and reading; p50 and p99 per round
  events daemon CPU and the longest capture-to-publish on the snow pattern with
         publish.change_frames 1 (a change event on most frames) without and with an events:
         section, the events saved per second and the store's time per save

CPU is the daemon's threads' time on a CPU (/proc/PID/task/*/schedstat) over the window,
as a share of one core.
Prints a Markdown table (and writes it to --out, default build/bench/http/summary.md).
Not part of make check.
"""
import argparse, http.client, json, os, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get('BUILD', 'build'))
BND = os.path.join(BUILD, 'basisnetd')

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--rounds', type=int, default=5)
ap.add_argument('--window', type=float, default=8.0, help='seconds per CPU measurement')
ap.add_argument('--model', default=os.path.join(ROOT, 'models', 'fmnist-basisnet.bnm'))
ap.add_argument('--out', default=os.path.join(BUILD, 'bench', 'http', 'summary.md'))
ap.add_argument('--only', default='off,mjpeg,metrics,events')
args = ap.parse_args()
tmp = tempfile.mkdtemp(prefix='bn-bench-http.')
sock_path = os.path.join(tmp, 'd.sock')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def config(http_port=None, events=False, change_frames=3, pattern='ball'):
    y = f"""camera: bench
model: {args.model}
log_level: warn
source:
  kind: test
  pattern: {pattern}
  width: 640
  height: 480
  fps: 30
publish:
  socket: {sock_path}
  mode: 0600
  max_clients: 128
  change_frames: {change_frames}
"""
    if http_port:
        y += f"http:\n  listen: 127.0.0.1:{http_port}\n  max_clients: 64\n"
    if events:
        y += f"events:\n  dir: {tmp}/events\n  keep: 50\n"
    path = os.path.join(tmp, 'c.yaml')
    open(path, 'w').write(y)
    return path


class Daemon:
    def __init__(self, cfg):
        env = dict(os.environ, OPENBLAS_NUM_THREADS='1')
        self.p = subprocess.Popen([BND, '--config', cfg], stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(tmp, 'daemon.log'), 'ab'), env=env)
        for _ in range(200):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock_path)
                s.close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit('basisnetd did not start: see ' + os.path.join(tmp, 'daemon.log'))

    def cpu(self):
        # every thread's time on a CPU in ns (schedstat), finer than the 10 ms of utime
        total = 0
        for t in os.listdir(f'/proc/{self.p.pid}/task'):
            try:
                total += int(open(f'/proc/{self.p.pid}/task/{t}/schedstat').read().split()[0])
            except (OSError, ValueError):
                pass   # a thread that just ended
        return total / 1e9

    def share(self, seconds):
        c0, t0 = self.cpu(), time.monotonic()
        time.sleep(seconds)
        return (self.cpu() - c0) / (time.monotonic() - t0)

    def stats(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock_path)
        f = s.makefile('rwb')
        f.write(b'{"cmd":"stats"}\n')
        f.flush()
        for line in f:
            m = json.loads(line)
            if m.get('type') == 'reply' and m.get('cmd') == 'stats':
                s.close()
                return m['stats']

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=10)


def med(xs):
    return statistics.median(xs)


def rng(xs, fmt='{:.2f}'):
    return (fmt + ' – ' + fmt).format(min(xs), max(xs))


rows = []
results = {}
only = args.only.split(',')
print(f'{args.rounds} rounds, {args.window:.0f} s windows, model {os.path.basename(args.model)}',
      file=sys.stderr)

# ---- HTTP off vs on, no client ----------------------------------------------------------------
if 'off' in only:
    off, on = [], []
    for r in range(args.rounds):
        order = [False, True] if r % 2 == 0 else [True, False]
        for with_http in order:
            d = Daemon(config(http_port=free_port() if with_http else None))
            time.sleep(2)
            x = d.share(args.window) * 100
            d.stop()
            (on if with_http else off).append(x)
        print(f'  off/on round {r + 1}: {off[-1]:.2f} % / {on[-1]:.2f} %', file=sys.stderr)
    diff = [b - a for a, b in zip(off, on)]
    rows.append(('daemon CPU, no http: section', f'{med(off):.2f} % of a core', rng(off)))
    rows.append(('daemon CPU, http: section, no client', f'{med(on):.2f} % of a core', rng(on)))
    rows.append(('difference (on - off, per round)', f'{med(diff):+.2f} points', rng(diff, '{:+.2f}')))

# ---- 10 MJPEG viewers at 5 fps ---------------------------------------------------------------
if 'mjpeg' in only:
    port = free_port()
    d = Daemon(config(http_port=port))
    time.sleep(2)
    idle, busy, fps = [], [], []
    for r in range(args.rounds):
        idle.append(d.share(args.window) * 100)
        outs = [os.path.join(tmp, f'v{i}.mjpg') for i in range(10)]
        viewers = [subprocess.Popen(['curl', '-s', '-N', '-o', o,
                                     f'http://127.0.0.1:{port}/stream.mjpg?fps=5'])
                   for o in outs]
        time.sleep(2)
        sizes0 = [open(o, 'rb').read().count(b'--bnframe') for o in outs]
        t0 = time.monotonic()
        busy.append(d.share(args.window) * 100)
        dt = time.monotonic() - t0
        sizes1 = [open(o, 'rb').read().count(b'--bnframe') for o in outs]
        for v in viewers:
            v.terminate()
            v.wait()
        fps.append(med([(b - a) / dt for a, b in zip(sizes0, sizes1)]))
        time.sleep(1)
        print(f'  mjpeg round {r + 1}: 0 viewers {idle[-1]:.2f} %, 10 viewers {busy[-1]:.2f} %, '
              f'{fps[-1]:.2f} parts/s each', file=sys.stderr)
    jpegs = d.stats()['http']['jpegs']
    d.stop()
    per = [(b - a) / 10 for a, b in zip(idle, busy)]
    rows.append(('daemon CPU, HTTP on, 0 viewers', f'{med(idle):.2f} % of a core', rng(idle)))
    rows.append(('daemon CPU, 10 `/stream.mjpg` viewers at 5 fps', f'{med(busy):.2f} % of a core', rng(busy)))
    rows.append(('**per viewer** ((10 - 0) / 10, per round)', f'**{med(per):.3f} % of a core**', rng(per, '{:.3f}')))
    rows.append(('parts per second each viewer got', f'{med(fps):.2f}', rng(fps)))
    results['jpegs'] = jpegs

# ---- /metrics with 64 subscribers ----------------------------------------------------------
def subscribers(n, stop):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock_path)
        s.setblocking(False)
        socks.append(s)

    def drain():
        import selectors
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        while not stop.is_set():
            for k, _ in sel.select(0.2):
                try:
                    k.fileobj.recv(65536)
                except BlockingIOError:
                    pass
        for s in socks:
            s.close()
    t = threading.Thread(target=drain)
    t.start()
    return t


def scrape_times(port, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
        c.request('GET', '/metrics')
        r = c.getresponse()
        body = r.read()
        c.close()
        ts.append((time.perf_counter() - t0) * 1e3)
        assert r.status == 200 and b'basisnetd_subscribers' in body
        time.sleep(0.01)
    ts.sort()
    return ts[len(ts) // 2], ts[int(len(ts) * 0.99) - 1]


if 'metrics' in only:
    port = free_port()
    d = Daemon(config(http_port=port))
    time.sleep(2)
    p50_0, p99_0, p50_64, p99_64 = [], [], [], []
    for r in range(args.rounds):
        a, b = scrape_times(port, 200)
        p50_0.append(a)
        p99_0.append(b)
        stop = threading.Event()
        t = subscribers(64, stop)
        time.sleep(1)
        assert d.stats()['clients']['connected'] >= 64
        a, b = scrape_times(port, 200)
        p50_64.append(a)
        p99_64.append(b)
        stop.set()
        t.join()
        time.sleep(0.5)
        print(f'  metrics round {r + 1}: p99 {p99_0[-1]:.2f} ms (0 subscribers), '
              f'{p99_64[-1]:.2f} ms (64)', file=sys.stderr)
    d.stop()
    rows.append(('`/metrics` p50 / p99, 0 subscribers (200 scrapes a round)',
                 f'{med(p50_0):.2f} / {med(p99_0):.2f} ms', 'p99 ' + rng(p99_0)))
    rows.append(('**`/metrics` p50 / p99, 64 subscribers connected**',
                 f'**{med(p50_64):.2f} / {med(p99_64):.2f} ms**', 'p99 ' + rng(p99_64)))

# ---- event snapshots ------------------------------------------------------------------------------
if 'events' in only:
    cpu = {False: [], True: []}
    c2p = {False: [], True: []}
    save_mean, save_max, saved = [], [], []
    for r in range(args.rounds):
        order = [False, True] if r % 2 == 0 else [True, False]
        for ev in order:
            d = Daemon(config(events=ev, change_frames=1, pattern='snow'))
            time.sleep(2)
            s0 = d.stats()
            cpu[ev].append(d.share(args.window) * 100)
            s = d.stats()
            c2p[ev].append(s['latency_ms']['capture_to_publish']['max'])
            if ev:
                e = s['events']
                save_mean.append(e['save_ms']['mean'])
                save_max.append(e['save_ms']['max'])
                saved.append((e['saved'] - s0['events']['saved']) / args.window)
            d.stop()
        print(f'  events round {r + 1}: off {cpu[False][-1]:.2f} %, on {cpu[True][-1]:.2f} %, '
              f'save mean {save_mean[-1]:.2f} ms', file=sys.stderr)
    rows.append(('daemon CPU, snow pattern, change_frames 1, no events: / events:',
                 f'{med(cpu[False]):.2f} % / {med(cpu[True]):.2f} %',
                 rng(cpu[False]) + ' / ' + rng(cpu[True])))
    rows.append(('change events saved per second', f'{med(saved):.2f}', rng(saved)))
    rows.append(('time per save (encode + write + fdatasync, store thread): mean / max',
                 f'{med(save_mean):.2f} / {med(save_max):.2f} ms', 'mean ' + rng(save_mean)))
    rows.append(('longest capture-to-publish since start, no events: / events:',
                 f'{med(c2p[False]):.2f} / {med(c2p[True]):.2f} ms',
                 rng(c2p[False]) + ' / ' + rng(c2p[True])))

cmd = 'bench/http/run.py ' + ' '.join(sys.argv[1:])
lines = [f'`{cmd.strip()}` ({args.rounds} interleaved rounds, {args.window:.0f} s windows, '
         f'{os.path.basename(args.model)}, test source 640x480 at 30 fps; median, range over rounds)',
         '', '| measurement | median | range |', '|---|---|---|']
lines += [f'| {a} | {b} | {c} |' for a, b, c in rows]
text = '\n'.join(lines) + '\n'
os.makedirs(os.path.dirname(args.out), exist_ok=True)
open(args.out, 'w').write(text)
print(text)
subprocess.run(['rm', '-rf', tmp])
