#!/bin/bash
# docs/protocol.md against what the daemon sends: every message type the daemon emits on the
# socket, and every field of it (nested ones as a.b), is in the doc (in a JSON example, a
# field table or the section's text), and every field of the doc's examples and tables is
# emitted, unless the doc says when it is absent (a field row saying "only", or an optional
# part the test names with its reason). The daemon plays a generated 3 s clip with the gate
# on (light, specialist and reuse labels, change events, end of stream), answers every
# command (and two bad ones), then is reloaded onto a missing camera (a new hello, source
# lost). ~10 s.
source "$(dirname "$0")/daemon_common.bash"

clip=$T/static.mkv
# 1 s black, 1 s colour bars, 1 s black: reused frames on the still parts, changes between.
caps=video/x-raw,width=64,height=64,framerate=30/1
gst-launch-1.0 -q concat name=c ! jpegenc ! matroskamux ! filesink location="$clip" \
    videotestsrc pattern=black num-buffers=30 ! $caps ! c. \
    videotestsrc pattern=smpte num-buffers=30 ! $caps ! c. \
    videotestsrc pattern=black num-buffers=30 ! $caps ! c. >/dev/null 2>&1 || fail "cannot make the test clip"
cat >"$T/d.yaml" <<EOC
camera: doc
model: $MODEL
source:
  kind: file
  path: $clip
  fps: 30
gate:
  mode: auto
publish:
  socket: $SOCK
  mode: 0600
  change_frames: 1      # every new answer is a change event: the run always has some
events:
  dir: $T/events        # change events name their snapshot; stats has events
EOC

# One client records everything, sends each command once, and after the end of the clip
# reloads the daemon onto a camera that is not there. It connects as soon as the socket
# accepts, before the first frame (whose answer is the first change event).
"$PY" - "$SOCK" "$T/d.yaml" "$T/all.jsonl" <<'PY' &
import json, socket, sys, time
sock, cfg, out = sys.argv[1:]
for _ in range(4000):
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(sock)
        break
    except OSError:
        s.close(); time.sleep(0.005)
else:
    sys.exit('the socket did not accept within 20 s')
s.settimeout(20)
f = s.makefile('rwb')
msgs = []
def read_until(pred, what):
    while True:
        line = f.readline()
        if not line:
            sys.exit('daemon closed the connection waiting for ' + what)
        m = json.loads(line)
        msgs.append(m)
        if pred(m):
            return m
def send(obj):
    f.write((obj if isinstance(obj, str) else json.dumps(obj)).encode() + b'\n'); f.flush()
read_until(lambda m: m['type'] == 'hello', 'hello')
for cmd in ({'cmd': 'ping', 'id': 1}, {'cmd': 'stats'}, {'cmd': 'subscribe', 'min_score': 0},
            {'cmd': 'set', 'budget_ms': 50}, {'cmd': 'launch', 'id': 'x'}, 'not json'):
    send(cmd)
    read_until(lambda m: m['type'] in ('reply', 'error'), 'an answer to %s' % cmd)
read_until(lambda m: m['type'] == 'source' and m['state'] == 'eos', 'end of stream')
send({'cmd': 'stats'})
read_until(lambda m: m['type'] == 'reply', 'stats after eos')
text = open(cfg).read().replace('kind: file', 'kind: v4l2\n  device: /dev/video-bn-doc-missing')
open(cfg, 'w').write(text)
send({'cmd': 'reload'})
seen = set()
def reloaded(m):
    if m['type'] == 'reply' and m['cmd'] == 'reload':
        seen.add('reply')
    if m['type'] == 'hello':
        seen.add('hello')
    if m['type'] == 'source' and m['state'] == 'lost':
        seen.add('lost')
    return seen == {'reply', 'hello', 'lost'}
read_until(reloaded, 'the reload reply, a new hello and source lost')
with open(out, 'w') as o:
    for m in msgs:
        o.write(json.dumps(m) + '\n')
PY
CLIENT=$!
start_daemon "$T/d.yaml"
wait $CLIENT || fail "recording client failed"
stop_daemon

"$PY" - "$ROOT/docs/protocol.md" "$T/all.jsonl" <<'PY' || fail "docs/protocol.md and the daemon differ (above)"
import json, re, sys
doc_path, rec_path = sys.argv[1:]
doc = open(doc_path).read()
msgs = [json.loads(l) for l in open(rec_path)]

# ---- the daemon's side: fields per message kind ("label", "reply.stats", ...) ----------
def flat(obj, prefix=''):
    """Dotted paths of every key; lists are leaves (histogram buckets)."""
    out = set()
    for k, v in obj.items():
        p = prefix + k
        out.add(p)
        if isinstance(v, dict):
            out |= flat(v, p + '.')
    return out
def kind(m):
    return 'reply.' + m['cmd'] if m['type'] == 'reply' else m['type']
emitted = {}
for m in msgs:
    if m['type'] == 'reply' and m.get('cmd') == 'stats':
        emitted.setdefault('stats', set()).update(flat(m['stats']))
        m = {k: v for k, v in m.items() if k != 'stats'}
        m['stats'] = {}
    emitted.setdefault(kind(m), set()).update(flat(m))
stages = {m['stage'] for m in msgs if m['type'] == 'label'}
assert stages >= {'light', 'reuse'} or stages >= {'specialist', 'reuse'}, \
    'the run should have produced classified and reused labels, got %s' % stages
for want in ('hello', 'label', 'change', 'source', 'error', 'reply.ping', 'reply.stats',
             'reply.subscribe', 'reply.set', 'reply.reload'):
    assert want in emitted, 'the run did not produce a %s message' % want

# ---- the doc's side ------------------------------------------------------------------------
# Sections: "### `hello`" ... and "## `stats`"; each section's text, JSON examples (in ```json
# blocks and in inline `{...}`), and field table rows.
sections = {}
heads = [(m.start(), m.end(), m.group(1)) for m in re.finditer(r'(?m)^##+ (.*)$', doc)]
for i, (a, b, title) in enumerate(heads):
    body = doc[b:heads[i + 1][0] if i + 1 < len(heads) else len(doc)]
    sections[title] = body

def examples(text):
    """JSON objects in the text; `...` elisions: {...} is an object whose keys are those of
    its first sibling object that is not elided ("synth":{...} beside "light":{...}),
    {...,"p50":1} the same plus the keys given, and ,..., in a list is dropped."""
    t = text.replace('{...}', '{"__elided__":1}').replace('{...,', '{"__elided__":1,')
    t = t.replace(',...,', ',')
    objs, dec, i = [], json.JSONDecoder(), 0
    while True:
        i = t.find('{"', i)
        if i < 0:
            return objs
        try:
            o, end = dec.raw_decode(t, i)
            objs.append(o)
            i = end
        except ValueError:
            i += 1
def fill_elided(o):
    if not isinstance(o, dict):
        return
    full = next((v for v in o.values() if isinstance(v, dict) and '__elided__' not in v), None)
    for k, v in list(o.items()):
        if isinstance(v, dict):
            if '__elided__' in v:
                del v['__elided__']
                if full is not None:
                    for fk, fv in full.items():
                        v.setdefault(fk, fv)
            fill_elided(v)

documented = {}      # kind -> documented paths
optional = {}        # kind -> paths the doc says may be absent
prose = {}           # kind -> backticked words of its section
def add(k, paths):
    documented.setdefault(k, set()).update(paths)
def table_rows(text):
    """(paths, meaning) of each `| field | meaning |` row: "`latency_ms.synth`, `.specialist`"."""
    rows = []
    for line in text.splitlines():
        m = re.match(r'^\| (`[^|]*`) \| (.*) \|$', line)
        if not m:
            continue
        names, last = [], ''
        for n in re.findall(r'`([^`]+)`', m.group(1)):
            if n.startswith('.'):
                n = last.rsplit('.', 1)[0] + n
            names.append(n)
            last = n
        rows.append((names, m.group(2)))
    return rows
def parents(p):
    parts = p.split('.')
    return {'.'.join(parts[:i]) for i in range(1, len(parts))}

for title, body in sections.items():
    tm = re.match(r'`(\w+)`', title)
    objs = examples(body)
    for o in objs:
        if 'type' in o:
            fill_elided(o)
            k = kind(o) if o['type'] != 'reply' or 'cmd' in o else 'reply'
            add(k, flat(o))
        elif title == '`stats`' and 'camera' in o:
            fill_elided(o)
            add('stats', flat(o))
    if tm and tm.group(1) in ('hello', 'label', 'change', 'source', 'stats'):
        k = tm.group(1)
        for names, meaning in table_rows(body):
            for n in names:
                add(k, {n} | parents(n))
                if re.search(r'\bonly\b|present only|while', meaning):
                    optional.setdefault(k, set()).add(n)
        prose[k] = set(re.findall(r'`([a-z_][a-z_0-9.]*)`', body))
    if title.startswith('`reply` and `error`'):
        prose['error'] = prose['reply'] = set(re.findall(r'`([a-z_][a-z_0-9.]*)`', body))

# Replies: the shape of the ping example for every command, plus what the command table
# says each one carries ("`reply` with `stats`", "with the `filter`", "with the `budget`"),
# with the subscribe reply's example and the hello's budget object for their contents.
base = documented.get('reply.ping', set())
cmd_table = sections['Commands from the client']
for line in cmd_table.splitlines():
    m = re.match(r'^\| `(\w+)` \|.*\| (`reply`.*) \|$', line)
    if m:
        carried = re.findall(r'with (?:the )?`(\w+)`', m.group(2))
        add('reply.' + m.group(1), base | set(carried))
add('reply.set', {'budget.' + p for p in flat(next(o for o in examples(sections['`hello`'])
                                                   if o.get('type') == 'hello')['budget'])})
add('error', {'id'})   # "`id` when the command carried one"
optional['error'] = {'cmd', 'id'}
optional['reply.ping'] = optional.get('reply.ping', set()) | {'id'}
for k in list(documented):
    if k.startswith('reply.') and k != 'reply.ping':
        optional[k] = optional.get(k, set()) | {'id'}

# Parts of stats that only some configs have, as the doc's bullets say.
optional['stats'] = optional.get('stats', set()) | {
    'mqtt',                 # "present only when the config has an mqtt: section"
    'budget.note',          # only when the budget is unattainable
}
# A part the section's text names in backticks ("while it runs also `noise_sigma` and `grid`
# (`width`, `height`, `cell`)", "the `gate` latency histogram") is documented below the
# deepest documented path; a histogram so named has the fields of the documented ones.
def is_documented(k, p):
    doc_k = documented.get(k, set())
    if p in doc_k:
        return True
    words = prose.get(k.split('.')[0], set())
    parts = p.split('.')
    i = max((j for j in range(1, len(parts)) if '.'.join(parts[:j]) in doc_k), default=0)
    if i == 0:
        return False
    if all(w in words for w in parts[i:]):
        return True
    # a.X.rest with X named in the text: rest as under a documented sibling a.Y.rest
    if i + 1 < len(parts) and parts[i] in words:
        rest = '.'.join(parts[i + 1:])
        base = '.'.join(parts[:i]) + '.'
        return any(d.startswith(base) and d.endswith('.' + rest) and
                   d.count('.') == p.count('.') for d in doc_k)
    return False

problems = []
for k in sorted(emitted):
    if k not in documented:
        problems.append('the daemon sends "%s" messages; docs/protocol.md has no example of them' % k)
        continue
    for p in sorted(emitted[k]):
        if not is_documented(k, p):
            problems.append('%s: the daemon sends field %s, which docs/protocol.md does not document' % (k, p))
for k in sorted(documented):
    if k not in emitted:
        if k not in ('broker', 'reply'):   # broker: MQTT only, never on the socket
            problems.append('docs/protocol.md documents "%s" messages; the run did not produce one' % k)
        continue
    for p in sorted(documented[k] - emitted[k]):
        opt = optional.get(k, set())
        if p in opt or parents(p) & opt or p.split('.')[0] in ('__elided__',):
            continue
        problems.append('%s: docs/protocol.md documents field %s, which the daemon did not send' % (k, p))
for p in problems:
    print('  ' + p)
n = sum(len(v) for v in emitted.values())
print('compared %d message kinds, %d fields emitted, %d documented' %
      (len(emitted), n, sum(len(v) for v in documented.values())))
sys.exit(1 if problems else 0)
PY
ok "docs/protocol.md lists every message type and field the daemon sent, and the daemon sent every documented one"
