// Structured output and forced tool calls, checked by a validator that is not
// ours: every schema of the corpus (tests/data/json_schema_corpus.json) is
// sent as response_format through the official `openai` SDK to a `reprise
// serve` whose model has random weights (tests/server/node_client_test.cc
// starts it with Qwen 2.5's chat template) and samples at temperature 1 with
// several seeds; every reply must parse and pass ajv (draft 2020-12, with
// ajv-formats). Then the same through the Responses API (text.format), and
// forced tool calls (openai tool_choice "required", Anthropic tool_choice
// "any") whose arguments must pass ajv against the tool's schema.
//   node structured_output.test.mjs http://127.0.0.1:PORT KEY
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const [baseUrl, apiKey] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  console.error('usage: node structured_output.test.mjs BASE_URL API_KEY');
  process.exit(2);
}
const corpus = JSON.parse(
  readFileSync(new URL('../data/json_schema_corpus.json', import.meta.url), 'utf8'));
const SEEDS = 6;

// strict: false only because the corpus uses draft-7's "definitions" next to
// 2020-12's "$defs" (both are what clients send); formats are checked.
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

const openai = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });
const anthropic = new Anthropic({ baseURL: baseUrl, apiKey, maxRetries: 0, timeout: 120_000 });

function check(validate, text, where) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    assert.fail(`${where}: does not parse: ${JSON.stringify(text)}`);
  }
  assert.ok(validate(value), `${where}: ${ajv.errorsText(validate.errors)} in ${text}`);
  return value;
}

test(`the corpus has at least 30 schemas, and ajv compiles them all`, () => {
  assert.ok(corpus.length >= 30, `${corpus.length} schemas`);
  for (const { name, schema } of corpus) assert.ok(ajv.compile(schema), name);
});

let replies = 0;
for (const { name, schema } of corpus) {
  test(`chat response_format json_schema "${name}": ${SEEDS} random replies validate`, async () => {
    const validate = ajv.compile(schema);
    for (let seed = 1; seed <= SEEDS; ++seed) {
      const r = await openai.chat.completions.create({
        model: 'm',
        messages: [{ role: 'user', content: `Reply with a ${name}.` }],
        temperature: 1,
        seed,
        max_tokens: 3000,
        response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } },
      });
      const choice = r.choices[0];
      assert.equal(choice.finish_reason, 'stop', `${name} seed ${seed}`);
      check(validate, choice.message.content, `${name} seed ${seed}`);
      ++replies;
    }
  });
}

test('every chat reply of the corpus validated', () => {
  assert.equal(replies, corpus.length * SEEDS);
});

test('Responses text.format json_schema: replies validate, streamed and not', async () => {
  for (const { name, schema } of corpus.slice(0, 12)) {
    const validate = ajv.compile(schema);
    const r = await openai.responses.create({
      model: 'm', input: `A ${name}, please.`, temperature: 1, max_output_tokens: 3000,
      text: { format: { type: 'json_schema', name, schema, strict: true } },
    });
    assert.equal(r.status, 'completed', name);
    check(validate, r.output_text, `responses ${name}`);
  }
  const { name, schema } = corpus.find((e) => e.name === 'order');
  const stream = await openai.responses.create({
    model: 'm', input: 'An order.', stream: true, max_output_tokens: 3000,
    text: { format: { type: 'json_schema', name, schema } },
  });
  let text = '';
  let completed = null;
  for await (const event of stream) {
    if (event.type === 'response.output_text.delta') text += event.delta;
    if (event.type === 'response.completed') completed = event.response;
  }
  assert.ok(completed);
  assert.equal(completed.output_text ?? completed.output.at(-1).content[0].text, text);
  check(ajv.compile(schema), text, 'streamed order');
});

// Object schemas of the corpus as tool parameters.
const toolSchemas = corpus.filter((e) => e.schema.type === 'object').slice(0, 8);

test('openai tool_choice "required": every call names a tool and its arguments validate', async () => {
  const tools = toolSchemas.map(({ name, schema }) => ({
    type: 'function', function: { name, description: `make a ${name}`, parameters: schema },
  }));
  for (let seed = 1; seed <= 10; ++seed) {
    const r = await openai.chat.completions.create({
      model: 'm', messages: [{ role: 'user', content: 'Call something.' }], tools,
      tool_choice: 'required', temperature: 1, seed, max_tokens: 3000,
    });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls', `seed ${seed}`);
    assert.ok(choice.message.tool_calls.length >= 1);
    for (const call of choice.message.tool_calls) {
      const entry = toolSchemas.find((e) => e.name === call.function.name);
      assert.ok(entry, `unknown tool ${call.function.name}`);
      check(ajv.compile(entry.schema), call.function.arguments, `seed ${seed} ${entry.name}`);
    }
  }
});

test('Anthropic tool_choice "any" and "tool": the tool_use input validates', async () => {
  const tools = toolSchemas.map(({ name, schema }) => ({ name, input_schema: schema }));
  for (let i = 0; i < 8; ++i) {
    const named = toolSchemas[i % toolSchemas.length].name;
    const msg = await anthropic.messages.create({
      model: 'claude-sonnet-4-5', max_tokens: 3000, temperature: 1, tools,
      tool_choice: i % 2 ? { type: 'tool', name: named } : { type: 'any' },
      messages: [{ role: 'user', content: 'Use a tool.' }],
    });
    assert.equal(msg.stop_reason, 'tool_use');
    const uses = msg.content.filter((b) => b.type === 'tool_use');
    assert.ok(uses.length >= 1);
    for (const use of uses) {
      if (i % 2) assert.equal(use.name, named);
      const entry = toolSchemas.find((e) => e.name === use.name);
      assert.ok(ajv.compile(entry.schema)(use.input), `${use.name}: ${JSON.stringify(use.input)}`);
    }
  }
});

test('an unsupported keyword is a 400 that names it', async () => {
  await assert.rejects(
    openai.chat.completions.create({
      model: 'm', messages: [{ role: 'user', content: 'x' }],
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'p', schema: { type: 'string', pattern: '^a+$' } },
      },
    }),
    (e) => e.status === 400 && /'pattern'/.test(e.message));
});
