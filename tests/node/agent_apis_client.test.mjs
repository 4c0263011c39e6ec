// Real-client tests of the two agent APIs: the official `@anthropic-ai/sdk`
// (messages.create, messages.stream, messages.countTokens — what Claude Code
// is built on) against POST /v1/messages, and the official `openai` SDK's
// responses.create (streaming and not — the API Codex speaks) against
// POST /v1/responses. The server's scripted model always replies
//   <think>\nThe user asks about Paris.\n</think>\n\n<tool_call>\n{"name": "get_weather",
//   "arguments": {"city": "Paris"}}\n</tool_call>
// (tests/server/node_client_test.cc makes it with Qwen 3's template, starts
// the server and passes its base URL and key; the arguments are three tokens):
//   node agent_apis_client.test.mjs http://127.0.0.1:PORT KEY
// Each SDK parses the reasoning and the call, sends the tool's result back,
// and the follow-up reports prompt tokens read from the cache. Streamed, the
// call's arguments arrive as several input_json_delta / arguments.delta events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

const [baseUrl, apiKey] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  console.error('usage: node agent_apis_client.test.mjs BASE_URL API_KEY');
  process.exit(2);
}
const reasoning = 'The user asks about Paris.';
const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
const question = 'What is the weather in Paris?';

// ---- @anthropic-ai/sdk ------------------------------------------------------
// The SDK sends the key as x-api-key.
const anthropic = new Anthropic({ baseURL: baseUrl, apiKey, maxRetries: 0, timeout: 60_000 });
const anthropicAsk = {
  model: 'claude-sonnet-4-5',
  max_tokens: 64,
  temperature: 0,
  system: [{ type: 'text', text: 'You are a weather assistant.' }],
  tools: [{ name: 'get_weather', description: 'Current weather for a city', input_schema: schema }],
  messages: [{ role: 'user', content: question }],
};

function assertAnthropicCall(message) {
  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.stop_reason, 'tool_use');
  assert.deepEqual(message.content.map((b) => b.type), ['thinking', 'tool_use']);
  assert.equal(message.content[0].thinking, reasoning);
  assert.equal(message.content[1].name, 'get_weather');
  assert.deepEqual(message.content[1].input, { city: 'Paris' });
  assert.equal(message.usage.output_tokens, 9);  // one token per script piece
  assert.ok(message.usage.input_tokens + message.usage.cache_read_input_tokens > 0);
}

test('anthropic: messages.create returns thinking and tool_use blocks', async () => {
  assertAnthropicCall(await anthropic.messages.create(anthropicAsk));
});

test('anthropic: messages.stream assembles the same message from the events', async () => {
  const stream = anthropic.messages.stream(anthropicAsk);
  const types = [];
  let json = '';
  let jsonDeltas = 0;
  stream.on('streamEvent', (e) => types.push(e.type));
  stream.on('inputJson', (delta) => {
    json += delta;
    jsonDeltas += 1;
  });
  const message = await stream.finalMessage();
  assertAnthropicCall(message);
  assert.deepEqual(JSON.parse(json), { city: 'Paris' });
  assert.equal(json, '{"city":"Paris"}');
  assert.ok(jsonDeltas > 1, `input_json_delta came in ${jsonDeltas} event(s)`);
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-2), 'message_delta');
  assert.equal(types.at(-1), 'message_stop');
});

test('anthropic: the tool result goes back and the follow-up hits the cache', async () => {
  const first = await anthropic.messages.create(anthropicAsk);
  const call = first.content.find((b) => b.type === 'tool_use');
  const followUp = {
    ...anthropicAsk,
    messages: [
      ...anthropicAsk.messages,
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny, 21 C' }] },
    ],
  };
  const counted = await anthropic.messages.countTokens({
    model: followUp.model, system: followUp.system, tools: followUp.tools, messages: followUp.messages,
  });
  const second = await anthropic.messages.create(followUp);
  assert.equal(second.usage.input_tokens + second.usage.cache_read_input_tokens, counted.input_tokens);
  assert.ok(second.usage.cache_read_input_tokens > 0, JSON.stringify(second.usage));
});

test('anthropic: a bad request is an APIError with Anthropic\'s error body', async () => {
  await assert.rejects(
    anthropic.messages.create({ ...anthropicAsk, tool_choice: { type: 'tool', name: 'nope' } }),
    (err) => {
      assert.ok(err instanceof Anthropic.BadRequestError, String(err));
      assert.equal(err.status, 400);
      assert.equal(err.error.type, 'error');
      assert.equal(err.error.error.type, 'invalid_request_error');
      return true;
    });
  const wrongKey = new Anthropic({ baseURL: baseUrl, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(wrongKey.messages.create(anthropicAsk), Anthropic.AuthenticationError);
});

// ---- openai responses -------------------------------------------------------
const openai = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
const responsesAsk = {
  model: 'm',
  instructions: 'You are a weather assistant.',
  input: [{ role: 'user', content: [{ type: 'input_text', text: question }] }],
  tools: [{ type: 'function', name: 'get_weather', description: 'Current weather for a city',
            parameters: schema, strict: false }],
  reasoning: { effort: 'low' },
  store: false,
  temperature: 0,
};

function assertResponsesCall(response) {
  assert.equal(response.object, 'response');
  assert.equal(response.status, 'completed');
  assert.deepEqual(response.output.map((i) => i.type), ['reasoning', 'function_call']);
  assert.equal(response.output[0].content[0].text, reasoning);
  const call = response.output[1];
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris' });
  assert.equal(response.usage.output_tokens, 9);  // one token per script piece
  assert.equal(typeof response.usage.input_tokens_details.cached_tokens, 'number');
  return call;
}

test('openai: responses.create returns reasoning and function_call items', async () => {
  assertResponsesCall(await openai.responses.create(responsesAsk));
});

test('openai: responses.create streams the Responses event sequence', async () => {
  const stream = await openai.responses.create({ ...responsesAsk, stream: true });
  const types = [];
  let args = '';
  let argDeltas = 0;
  let completed = null;
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === 'response.function_call_arguments.delta') {
      args += event.delta;
      argDeltas += 1;
    }
    if (event.type === 'response.completed') completed = event.response;
  }
  assert.ok(argDeltas > 1, `function_call_arguments.delta came ${argDeltas} time(s)`);
  assert.equal(args, completed.output[1].arguments);
  assert.equal(types[0], 'response.created');
  assert.equal(types.at(-1), 'response.completed');
  assert.ok(types.includes('response.output_item.added'));
  assert.ok(types.includes('response.function_call_arguments.done'));
  assert.deepEqual(JSON.parse(args), { city: 'Paris' });
  assertResponsesCall(completed);
});

test('openai: function_call_output goes back and the follow-up hits the cache', async () => {
  const first = await openai.responses.create(responsesAsk);
  const call = assertResponsesCall(first);
  const second = await openai.responses.create({
    ...responsesAsk,
    input: [
      ...responsesAsk.input,
      ...first.output,
      { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21 C' },
    ],
  });
  assert.ok(second.usage.input_tokens_details.cached_tokens > 0, JSON.stringify(second.usage));
  assert.ok(second.usage.input_tokens > first.usage.input_tokens);
});

test('openai: previous_response_id is refused with a clear 400', async () => {
  await assert.rejects(
    openai.responses.create({ ...responsesAsk, previous_response_id: 'resp_123' }),
    (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.param, 'previous_response_id');
      assert.match(err.message, /not supported/);
      return true;
    });
});
