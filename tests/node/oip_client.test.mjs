// Open Inference Protocol (KServe v2) over gRPC, spoken by a client on a different gRPC
// stack: Node's @grpc/grpc-js with the service loaded at run time by @grpc/proto-loader
// from the project's own proto/grpc_service.proto (no generated code, no copied .proto).
//
// The before hook exports the test model repository (tests/fixtures/make_fixtures.py),
// starts torchbricks-server on a free port and waits for ServerReady; the after hook
// stops it with SIGTERM and checks that it exits 0.
//
// Env: TORCHBRICKS_SERVER  server binary (default <repo>/build/server/torchbricks-server)
//      TORCHBRICKS_PYTHON  python for make_fixtures.py (default .venv/bin/python, made by scripts/setup.sh)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PYTHON = process.env.TORCHBRICKS_PYTHON || path.join(REPO_ROOT, '.venv', 'bin', 'python');
const SERVER_BIN =
  process.env.TORCHBRICKS_SERVER || path.join(REPO_ROOT, 'build', 'server', 'torchbricks-server');

const STARTUP_LIMIT_MS = 60_000; // port printed + ServerReady true, all together
const SHUTDOWN_LIMIT_MS = 30_000;
const RPC_DEADLINE_MS = 20_000;

const MODEL = 'readme_dummy';
const BATCH = 2;
const IMAGE_SHAPE = [3, 100, 200];

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/** Calls a unary RPC of `client` and resolves with its response. */
function unary(client, method, request, deadlineMs = RPC_DEADLINE_MS) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + deadlineMs }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** int64 shapes arrive as strings (longs: String); turn them into numbers. */
const shapeOf = (tensor) => tensor.shape.map((d) => Number(d));

const product = (dims) => dims.reduce((a, b) => a * b, 1);

/** Float32 values as little-endian bytes, independent of the host's byte order. */
function float32LE(values) {
  const buf = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) buf.writeFloatLE(values[i], i * 4);
  return buf;
}

/** Little-endian FP32 bytes back into a Float32Array. */
function fromFloat32LE(bytes) {
  assert.equal(bytes.length % 4, 0, `FP32 payload of ${bytes.length} bytes is not a multiple of 4`);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
  return out;
}

/** A deterministic batch of images in [0, 1), different for each seed. */
function makeImages(seed) {
  const n = BATCH * product(IMAGE_SHAPE);
  const values = new Float32Array(n);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    values[i] = state / 4294967296;
  }
  return values;
}

function inferRequest(images, { id = '', outputs = [] } = {}) {
  return {
    model_name: MODEL,
    id,
    inputs: [{ name: 'raw_images', datatype: 'FP32', shape: [BATCH, ...IMAGE_SHAPE] }],
    outputs: outputs.map((name) => ({ name })),
    raw_input_contents: [float32LE(images)],
  };
}

/**
 * Decodes every output of a ModelInferResponse from raw_output_contents into
 * { name: { datatype, shape, data: Float32Array } } (FP32 outputs only).
 */
function decodeOutputs(response) {
  assert.equal(
    response.raw_output_contents.length,
    response.outputs.length,
    'one raw_output_contents entry per output',
  );
  const decoded = {};
  response.outputs.forEach((out, i) => {
    const shape = shapeOf(out);
    assert.equal(out.datatype, 'FP32', `output ${out.name} datatype`);
    const raw = response.raw_output_contents[i];
    assert.equal(raw.length, product(shape) * 4, `output ${out.name}: byte size for shape [${shape}]`);
    assert.ok(!(out.name in decoded), `output ${out.name} listed twice`);
    decoded[out.name] = { datatype: out.datatype, shape, data: fromFloat32LE(raw) };
  });
  return decoded;
}

function rows(tensor) {
  const [n, width] = tensor.shape;
  return Array.from({ length: n }, (_, r) => Array.from(tensor.data.subarray(r * width, (r + 1) * width)));
}

function softmax(row) {
  const max = Math.max(...row);
  const exps = row.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

// ---------------------------------------------------------------------------------
// Server lifecycle
// ---------------------------------------------------------------------------------

let fixturesDir;
let server; // ChildProcess
let serverExit; // Promise<{ code, signal }>
let serverLog = ''; // stderr tail, for failure messages
let client;

function logTail() {
  return serverLog.split('\n').slice(-40).join('\n');
}

/** Spawns the server and resolves with the port it prints on stdout. */
function startServer(repository) {
  server = spawn(
    SERVER_BIN,
    ['--model-repository', repository, '--grpc-port', '0', '--grpc-address', '127.0.0.1',
     '--metrics-port', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  serverExit = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })));
  server.stderr.setEncoding('utf8');
  server.stderr.on('data', (chunk) => {
    serverLog = (serverLog + chunk).slice(-64 * 1024);
  });

  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(
      () => reject(new Error(`no port printed within ${STARTUP_LIMIT_MS} ms\n${logTail()}`)),
      STARTUP_LIMIT_MS,
    );
    server.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${SERVER_BIN}: ${err.message}`));
    });
    serverExit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${signal})\n${logTail()}`));
    });
    server.stdout.setEncoding('utf8');
    server.stdout.on('data', (chunk) => {
      stdout += chunk;
      const m = /torchbricks-server: serving gRPC on (\S+):(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[2]));
      }
    });
  });
}

before(async () => {
  fixturesDir = mkdtempSync(path.join(tmpdir(), 'torchbricks-node-'));
  const repository = path.join(fixturesDir, 'models');
  execFileSync(PYTHON, [path.join(REPO_ROOT, 'tests', 'fixtures', 'make_fixtures.py'), repository], {
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 120_000,
  });

  const startedAt = Date.now();
  const port = await startServer(repository);

  const definition = protoLoader.loadSync('proto/grpc_service.proto', {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [REPO_ROOT],
  });
  const { inference } = grpc.loadPackageDefinition(definition);
  client = new inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 256 * 1024 * 1024,
    'grpc.max_send_message_length': 256 * 1024 * 1024,
  });

  // Poll ServerReady until true, within the same 60 s budget as the start.
  let lastError = null;
  for (;;) {
    const left = STARTUP_LIMIT_MS - (Date.now() - startedAt);
    if (left <= 0) {
      throw new Error(
        `server not ready within ${STARTUP_LIMIT_MS} ms (last error: ${lastError?.message})\n${logTail()}`,
      );
    }
    try {
      const { ready } = await unary(client, 'ServerReady', {}, Math.min(left, 2_000));
      if (ready === true) break;
      lastError = new Error('ready=false');
    } catch (err) {
      lastError = err;
    }
    await sleep(200);
  }
});

after(async () => {
  try {
    client?.close();
    if (server && (server.exitCode !== null || server.signalCode !== null)) {
      assert.fail(
        `server exited before SIGTERM (code ${server.exitCode}, signal ${server.signalCode})\n${logTail()}`,
      );
    }
    if (server) {
      server.kill('SIGTERM');
      let timer;
      const result = await Promise.race([
        serverExit,
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(null), SHUTDOWN_LIMIT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (result === null) {
        server.kill('SIGKILL');
        await serverExit;
        assert.fail(`server did not stop within ${SHUTDOWN_LIMIT_MS} ms of SIGTERM\n${logTail()}`);
      }
      assert.deepEqual(result, { code: 0, signal: null }, `server exit after SIGTERM\n${logTail()}`);
    }
  } finally {
    if (fixturesDir) rmSync(fixturesDir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

describe('torchbricks-server via @grpc/grpc-js', () => {
  test('ServerLive reports live', async () => {
    const response = await unary(client, 'ServerLive', {});
    assert.equal(response.live, true);
  });

  test('ModelMetadata describes readme_dummy', async () => {
    const md = await unary(client, 'ModelMetadata', { name: MODEL });
    assert.equal(md.name, MODEL);
    assert.equal(md.platform, 'torchbricks');

    const input = md.inputs.find((t) => t.name === 'raw_images');
    assert.ok(input, `input raw_images in ${JSON.stringify(md.inputs.map((t) => t.name))}`);
    assert.equal(input.datatype, 'FP32');
    assert.deepEqual(shapeOf(input), [-1, 3, 100, 200]);

    const outputNames = md.outputs.map((t) => t.name);
    for (const name of ['logits', 'softmaxed']) {
      assert.ok(outputNames.includes(name), `output ${name} in ${JSON.stringify(outputNames)}`);
    }
  });

  test('ModelInfer with raw_input_contents: softmaxed = softmax(logits), deterministic, input-dependent', async () => {
    const images = makeImages(1);
    const first = await unary(client, 'ModelInfer', inferRequest(images, { id: 'node-req-1' }));
    assert.equal(first.model_name, MODEL);
    assert.equal(first.id, 'node-req-1', 'request id echoed back');

    const out = decodeOutputs(first);
    assert.ok(out.logits, `logits among ${Object.keys(out)}`);
    assert.ok(out.softmaxed, `softmaxed among ${Object.keys(out)}`);
    assert.deepEqual(out.logits.shape, [BATCH, 3]);
    assert.deepEqual(out.softmaxed.shape, [BATCH, 3]);

    const logitRows = rows(out.logits);
    const softRows = rows(out.softmaxed);
    for (let r = 0; r < BATCH; r++) {
      assert.ok(logitRows[r].every(Number.isFinite), `logits row ${r} finite: ${logitRows[r]}`);
      const expected = softmax(logitRows[r]);
      softRows[r].forEach((v, c) => {
        assert.ok(
          Math.abs(v - expected[c]) <= 1e-5,
          `softmaxed[${r}][${c}] = ${v}, softmax(logits) gives ${expected[c]}`,
        );
      });
      const sum = softRows[r].reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) <= 1e-5, `softmaxed row ${r} sums to ${sum}`);
    }

    // Same input, same answer.
    const again = decodeOutputs(await unary(client, 'ModelInfer', inferRequest(images)));
    assert.deepEqual(Array.from(again.logits.data), Array.from(out.logits.data), 'logits deterministic');
    assert.deepEqual(Array.from(again.softmaxed.data), Array.from(out.softmaxed.data), 'softmaxed deterministic');

    // Different input, different answer.
    const other = decodeOutputs(await unary(client, 'ModelInfer', inferRequest(makeImages(2))));
    assert.deepEqual(other.logits.shape, [BATCH, 3]);
    const maxDiff = Math.max(...Array.from(other.logits.data, (v, i) => Math.abs(v - out.logits.data[i])));
    assert.ok(maxDiff > 1e-6, `logits should change with the input (max |diff| = ${maxDiff})`);
  });

  test('ModelInfer for an unknown model is NOT_FOUND naming the model', async () => {
    const name = 'no_such_model_from_node';
    await assert.rejects(
      unary(client, 'ModelInfer', { ...inferRequest(makeImages(3)), model_name: name }),
      (err) => {
        assert.equal(err.code, grpc.status.NOT_FOUND, `status ${err.code} (${err.details})`);
        assert.equal(grpc.status.NOT_FOUND, 5);
        assert.ok(err.details.includes(name), `details "${err.details}" name the model`);
        return true;
      },
    );
  });

  test('ModelInfer requesting only embedding returns exactly that output', async () => {
    const response = await unary(client, 'ModelInfer', inferRequest(makeImages(4), { outputs: ['embedding'] }));
    assert.deepEqual(
      response.outputs.map((t) => t.name),
      ['embedding'],
    );
    const out = decodeOutputs(response);
    assert.deepEqual(out.embedding.shape, [BATCH, 10, 100, 200]);
    assert.ok(out.embedding.data.every(Number.isFinite), 'embedding values finite');
  });
});
