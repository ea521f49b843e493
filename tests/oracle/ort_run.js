// Runs an ONNX model with ONNX Runtime (the npm package onnxruntime-node) as an
// independent oracle for slmopt's runtime.
//
//   node ort_run.js MODEL OUT_DIR [--repeat N] [--optimization LEVEL] NAME=INPUT.npy ...
//
// Writes OUT_DIR/<i>.npy for the i-th model output and prints JSON with the
// output names and the mean latency. One intra-op thread, so timings compare
// with slmopt's single-threaded reference runtime. LEVEL is ONNX Runtime's
// graph optimization level (disabled, basic, extended, all; default all).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(process.env.SLMOPT_ORT_MODULE || 'onnxruntime-node');

const NPY_TYPES = {
  '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array], '<i8': ['int64', BigInt64Array],
  '<i4': ['int32', Int32Array], '|u1': ['uint8', Uint8Array], '|i1': ['int8', Int8Array], '|b1': ['bool', Uint8Array],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(file + ': not an npy file');
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const [type, Ctor] = NPY_TYPES[descr];
  const bytes = buf.subarray(start + headerLen);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new ort.Tensor(type, new Ctor(copy.buffer), shape);
}

function writeNpy(file, tensor) {
  const descr = Object.keys(NPY_TYPES).find(k => NPY_TYPES[k][0] === tensor.type);
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(10);
  prefix.write('\x93NUMPY', 0, 'latin1');
  prefix[6] = 1; prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([prefix, Buffer.from(header, 'latin1'), data]));
}

async function main() {
  const [model, outDir, ...rest] = process.argv.slice(2);
  let repeat = 1;
  let optimization = 'all';
  const feeds = {};
  for (let i = 0; i < rest.length; ++i) {
    if (rest[i] === '--repeat') { repeat = Number(rest[++i]); continue; }
    if (rest[i] === '--optimization') { optimization = rest[++i]; continue; }
    const eq = rest[i].indexOf('=');
    feeds[rest[i].slice(0, eq)] = readNpy(rest[i].slice(eq + 1));
  }
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: optimization,
  });
  let results;
  const start = process.hrtime.bigint();
  for (let r = 0; r < repeat; ++r) results = await session.run(feeds);
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / repeat;
  fs.mkdirSync(outDir, { recursive: true });
  session.outputNames.forEach((name, i) => writeNpy(path.join(outDir, `${i}.npy`), results[name]));
  console.log(JSON.stringify({ outputs: session.outputNames, latency_ms: ms }));
}

main().catch(e => { console.error('ort_run: ' + e.message); process.exit(2); });
