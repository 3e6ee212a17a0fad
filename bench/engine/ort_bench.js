// ONNX Runtime (onnxruntime-node) peer for bench/engine/run.sh: times the light, specialist
// and full graphs exported by peers.py at batch 1; one JSON line per graph, like peers.py.
//   node ort_bench.js OUTDIR --threads N --seconds S
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function readNpy(file) {
  // .npy v1/v2, little-endian float32, C order
  const buf = fs.readFileSync(file);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) {
    throw new Error(`${file}: expected little-endian float32 C-order`);
  }
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return new ort.Tensor('float32', data, shape);
}

function pct(sorted, p) {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
  const args = process.argv.slice(2);
  const dir = args[0];
  const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const threads = opt('--threads', 1);
  const seconds = opt('--seconds', 5);
  const inputs = {
    light_input: readNpy(path.join(dir, 'light_input.npy')),
    input: readNpy(path.join(dir, 'input.npy')),
  };
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
  for (const graph of ['light', 'specialist', 'full']) {
    const session = await ort.InferenceSession.create(path.join(dir, `${graph}.ort.onnx`), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const feeds = {};
    for (const name of session.inputNames) feeds[name] = inputs[name];
    const out = await session.run(feeds);
    const got = graph === 'light' ? out.light_logits.data : out.logits.data;
    const want = (graph === 'light' ? ref.light_logits : ref.logits)[0];
    let err = 0;
    let scale = 1;
    for (let i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(got[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    for (let i = 0; i < 10; i++) await session.run(feeds);
    const t = [];
    const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
    while (t.length < 20 || process.hrtime.bigint() < end) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const s = Float64Array.from(t).sort();
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    console.log(JSON.stringify({
      p50_ms: +pct(s, 50).toFixed(4), p99_ms: +pct(s, 99).toFixed(4), mean_ms: +mean.toFixed(4),
      iterations: t.length, runtime: `onnxruntime-${ort.env.versions.common}`, graph, threads,
      max_rel_err: err / scale,
    }));
    await session.release();
  }
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message}`);
  process.exit(1);
});
