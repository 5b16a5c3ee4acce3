// The official OpenAI Node SDK, unmodified (only baseURL and apiKey set), against the
// real sandbox-api binary on SmolLM2 (generic tool format) and the Mistral-vocabulary
// test model: tool calls, runTools (plain and streamed) and zodFunction.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';
import { zodFunction } from 'openai/helpers/zod';
import { z } from 'zod';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const FIXTURES = process.env.AI_SANDBOX_FIXTURES ?? join(REPO, '.fixtures');
const BINARY =
  process.env.SANDBOX_API_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO, 'target'), 'release', 'sandbox-api');
const KEY = 'sk-node-test-0123456789';
const LOGS = mkdtempSync(join(tmpdir(), 'sandbox-api-node-'));

async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  return port;
}

/** Starts sandbox-api on a model and waits until /ready answers 200. */
async function startApi(model, extra = []) {
  assert.ok(existsSync(BINARY), `build the binary first: ${BINARY}`);
  const port = await freePort();
  const log = join(LOGS, `${port}.log`);
  const child = spawn(
    BINARY,
    ['--model', join(FIXTURES, model), '--listen', `127.0.0.1:${port}`, '--api-key', KEY, '--ctx', '4096', ...extra],
    { stdio: ['ignore', openSync(log, 'w'), openSync(log, 'a')] },
  );
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    assert.equal(child.exitCode, null, `sandbox-api exited; see ${log}`);
    try {
      if ((await fetch(`${base}/ready`)).status === 200) break;
    } catch {
      // not listening yet
    }
    assert.ok(Date.now() < deadline, `sandbox-api not ready within 60 s; see ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, client: new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY, maxRetries: 0 }) };
}

const Weather = z.object({ city: z.enum(['Paris', 'Oslo', 'Lima']), unit: z.enum(['celsius', 'fahrenheit']) });

// The random-weight Mistral model writes text until the token limit, which the SDK's
// parsing runner refuses by design (LengthFinishReasonError): `auto` runs only on a
// trained model.
for (const [name, model, trained] of [
  ['SmolLM2 (generic format)', 'smollm2-135m-instruct.gguf', true],
  ['tiny Mistral (Mistral format)', 'tiny-mistral-v0.3.gguf', false],
]) {
  describe(name, () => {
    let api;
    before(async () => {
      api = await startApi(model);
    });
    after(() => api.child.kill('SIGTERM'));

    const weatherTool = (calls) =>
      zodFunction({
        name: 'get_weather',
        description: 'Current weather for a city',
        parameters: Weather,
        function: (args) => {
          calls.push(args);
          return { temperature: 21, unit: args.unit };
        },
      });

    test('a required call comes back as tool_calls that match the schema', async () => {
      const r = await api.client.chat.completions.create({
        model: 'any',
        messages: [{ role: 'user', content: "What's the weather in Paris?" }],
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: z.toJSONSchema(Weather) } }],
        tool_choice: 'required',
        parallel_tool_calls: false,
        max_tokens: 80,
        temperature: 0,
      });
      const choice = r.choices[0];
      assert.equal(choice.finish_reason, 'tool_calls');
      assert.equal(choice.message.tool_calls.length, 1);
      const call = choice.message.tool_calls[0];
      assert.match(call.id, /^[A-Za-z0-9]{9}$/);
      Weather.parse(JSON.parse(call.function.arguments));
    });

    test('chat.completions.parse fills parsed_arguments through zodFunction', async () => {
      const r = await api.client.chat.completions.parse({
        model: 'any',
        messages: [{ role: 'user', content: 'Weather in Oslo?' }],
        tools: [weatherTool([])],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        max_tokens: 80,
        temperature: 0,
      });
      const parsed = r.choices[0].message.tool_calls[0].function.parsed_arguments;
      assert.deepEqual(Weather.parse(parsed), parsed);
    });

    for (const stream of [false, true]) {
      test(`runTools${stream ? ' (streamed)' : ''} calls the function and sends its result back`, async () => {
        const calls = [];
        const runner = api.client.chat.completions.runTools({
          model: 'any',
          messages: [{ role: 'user', content: "What's the weather in Lima, in fahrenheit?" }],
          tools: [weatherTool(calls)],
          tool_choice: { type: 'function', function: { name: 'get_weather' } },
          max_tokens: 80,
          temperature: 0,
          stream,
        });
        await runner.done();
        assert.equal(calls.length, 1);
        Weather.parse(calls[0]);
        const roles = runner.messages.map((m) => m.role);
        assert.deepEqual(roles, ['user', 'assistant', 'tool']);
        assert.equal(runner.messages[2].tool_call_id, runner.messages[1].tool_calls[0].id);
      });
    }

    test('runTools with tool_choice auto runs to an end, every call well formed', { skip: !trained && 'random weights' }, async () => {
      const calls = [];
      const runner = api.client.chat.completions.runTools(
        {
          model: 'any',
          messages: [{ role: 'user', content: "What's the weather in Paris?" }],
          tools: [weatherTool(calls)],
          max_tokens: 60,
          temperature: 0,
        },
        { maxChatCompletions: 3 },
      );
      await runner.done();
      for (const args of calls) Weather.parse(args);
      for (const m of runner.messages.filter((m) => m.role === 'tool')) {
        assert.doesNotMatch(String(m.content), /Invalid tool_call|invalid/i);
      }
      const last = runner.messages.at(-1);
      assert.ok(['assistant', 'tool'].includes(last.role));
    });
  });
}
