// Real-client tool calling: the official `openai` SDK and the Vercel AI SDK's
// `@ai-sdk/openai-compatible` provider (what OpenCode uses for local servers)
// against a `reprise serve` whose scripted model always replies
//   <think>\nThe user asks about Paris.\n</think>\n\n<tool_call>\n{"name": "get_weather",
//   "arguments": {"city": "Paris"}}\n</tool_call>
// over several tokens, the arguments over three (tests/server/node_client_test.cc makes the model with
// Qwen 3's chat template, starts the server and passes its base URL and key):
//   node tools_client.test.mjs http://127.0.0.1:PORT KEY
// Each SDK parses the call, its arguments, the finish reason and (where the
// SDK exposes it) the reasoning, streaming and not, and sends a conversation
// with the tool's result back. Streamed, the arguments arrive as several
// deltas (the server streams them as they are generated).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, streamText, stepCountIs, tool } from 'ai';
import { z } from 'zod';

const [baseUrl, apiKey] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  console.error('usage: node tools_client.test.mjs BASE_URL API_KEY');
  process.exit(2);
}
const reasoning = 'The user asks about Paris.';

// ---- openai ----------------------------------------------------------------
const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
const openaiTools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
const question = { role: 'user', content: 'What is the weather in Paris?' };

function assertWeatherCall(call) {
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, 'get_weather');
  assert.equal(typeof call.function.arguments, 'string');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
}

test('openai: a tool call comes back parsed (non-streaming)', async () => {
  const r = await client.chat.completions.create({
    model: 'm', messages: [question], tools: openaiTools, temperature: 0,
  });
  const choice = r.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  assert.equal(choice.message.tool_calls.length, 1);
  assertWeatherCall(choice.message.tool_calls[0]);
  assert.equal(choice.message.reasoning_content, reasoning);
});

test('openai: streamed tool-call deltas assemble into the same call', async () => {
  // The SDK's own stream helper accumulates deltas into a final completion
  // and rejects malformed tool-call deltas.
  const runner = client.beta.chat.completions.stream({
    model: 'm', messages: [question], tools: openaiTools, temperature: 0,
  });
  let reasoningText = '';
  let contentText = '';
  runner.on('chunk', (chunk) => {
    const delta = chunk.choices[0]?.delta ?? {};
    if (delta.reasoning_content) reasoningText += delta.reasoning_content;
    if (delta.content) contentText += delta.content;
  });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(final.choices[0].message.tool_calls.length, 1);
  assertWeatherCall(final.choices[0].message.tool_calls[0]);
  assert.equal(reasoningText, reasoning);
  assert.equal(contentText, '');
  // And by hand, with create({stream: true}).
  const stream = await client.chat.completions.create({
    model: 'm', messages: [question], tools: openaiTools, temperature: 0, stream: true,
  });
  const calls = [];
  let finish = null;
  let argumentDeltas = 0;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.finish_reason) finish = c.finish_reason;
    for (const tc of c.delta.tool_calls ?? []) {
      if (tc.id) calls[tc.index] = { id: tc.id, type: tc.type, function: { name: tc.function.name, arguments: '' } };
      if (tc.function?.arguments) argumentDeltas += 1;
      calls[tc.index].function.arguments += tc.function?.arguments ?? '';
    }
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(calls.length, 1);
  assertWeatherCall(calls[0]);
  assert.equal(calls[0].function.arguments, '{"city":"Paris"}');
  assert.ok(argumentDeltas > 1, `arguments came in ${argumentDeltas} delta(s)`);
});

test('openai: a conversation with the tool result is accepted', async () => {
  const first = await client.chat.completions.create({
    model: 'm', messages: [question], tools: openaiTools, temperature: 0,
  });
  const call = first.choices[0].message.tool_calls[0];
  const messages = [
    question,
    first.choices[0].message,  // content null + tool_calls, as the SDK returned it
    { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ forecast: 'sunny', celsius: 21 }) },
  ];
  for (const stream of [false, true]) {
    const r = await client.chat.completions.create({
      model: 'm', messages, tools: openaiTools, tool_choice: 'auto', temperature: 0, stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    });
    if (!stream) {
      assert.equal(r.choices[0].finish_reason, 'tool_calls');
      assert.ok(r.usage.prompt_tokens > first.usage.prompt_tokens, JSON.stringify(r.usage));
      // The replayed conversation extends the first prompt: it hits the cache.
      assert.ok(r.usage.prompt_tokens_details.cached_tokens > 0, JSON.stringify(r.usage));
      continue;
    }
    let finish = null;
    for await (const chunk of r) finish = chunk.choices[0]?.finish_reason ?? finish;
    assert.equal(finish, 'tool_calls');
  }
  // A tool result for a call that was never made is refused, with the reason.
  await assert.rejects(
    client.chat.completions.create({
      model: 'm', tools: openaiTools,
      messages: [question, { role: 'tool', tool_call_id: 'call_nope', content: 'x' }],
    }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages[1].tool_call_id');
});

// ---- @ai-sdk/openai-compatible ----------------------------------------------
const provider = createOpenAICompatible({ name: 'reprise', baseURL: `${baseUrl}/v1`, apiKey });
const model = provider.chatModel('m');
let executed = [];
const aiTools = {
  get_weather: tool({
    description: 'Current weather for a city',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      executed.push(city);
      return { city, forecast: 'sunny', celsius: 21 };
    },
  }),
};

test('ai-sdk: generateText parses the call, runs the tool and sends its result back', async () => {
  executed = [];
  const result = await generateText({
    model, tools: aiTools, temperature: 0, prompt: 'What is the weather in Paris?',
    stopWhen: stepCountIs(2), maxRetries: 0,
  });
  assert.equal(result.steps.length, 2);
  const [first, second] = result.steps;
  assert.equal(first.finishReason, 'tool-calls');
  assert.equal(first.toolCalls.length, 1);
  assert.equal(first.toolCalls[0].toolName, 'get_weather');
  assert.deepEqual(first.toolCalls[0].input, { city: 'Paris' });
  assert.equal(first.reasoningText, reasoning);
  assert.equal(first.text, '');
  assert.deepEqual(first.toolResults[0].output, { city: 'Paris', forecast: 'sunny', celsius: 21 });
  // The second request replayed the call and carried the tool's result.
  const sent = typeof second.request.body === 'string' ? JSON.parse(second.request.body) : second.request.body;
  const toolMessage = sent.messages.find((m) => m.role === 'tool');
  assert.ok(toolMessage, JSON.stringify(sent.messages));
  assert.equal(toolMessage.tool_call_id, first.toolCalls[0].toolCallId);
  assert.equal(second.finishReason, 'tool-calls');
  assert.deepEqual(executed, ['Paris', 'Paris']);
  assert.ok(second.usage.inputTokens > first.usage.inputTokens);
});

test('ai-sdk: streamText streams reasoning and the tool call', async () => {
  executed = [];
  const result = streamText({
    model, tools: aiTools, temperature: 0, prompt: 'What is the weather in Paris?', maxRetries: 0,
  });
  const kinds = new Set();
  const errors = [];
  let reasoningText = '';
  let inputDeltas = '';
  let inputDeltaCount = 0;
  for await (const part of result.fullStream) {
    kinds.add(part.type);
    if (part.type === 'error') errors.push(part.error);
    if (part.type === 'reasoning-delta') reasoningText += part.text;
    if (part.type === 'tool-input-delta') {
      inputDeltas += part.delta;
      inputDeltaCount += 1;
    }
  }
  // The provider passes the argument deltas on as tool-input-delta parts.
  assert.ok(inputDeltaCount > 1, `tool input came in ${inputDeltaCount} delta(s)`);
  assert.deepEqual(JSON.parse(inputDeltas), { city: 'Paris' });
  assert.deepEqual(errors, []);
  const calls = await result.toolCalls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].toolName, 'get_weather');
  assert.deepEqual(calls[0].input, { city: 'Paris' });
  assert.equal(await result.finishReason, 'tool-calls');
  assert.equal(reasoningText, reasoning);
  assert.equal(await result.reasoningText, reasoning);
  assert.equal(await result.text, '');
  assert.ok(kinds.has('tool-call') && kinds.has('tool-result'), [...kinds].join(','));
  assert.deepEqual(executed, ['Paris']);
});

test('ai-sdk: a conversation with tool results as messages', async () => {
  const result = await generateText({
    model, tools: aiTools, temperature: 0, maxRetries: 0,
    messages: [
      { role: 'user', content: 'What is the weather in Paris?' },
      { role: 'assistant', content: [
        { type: 'text', text: 'Let me look.' },
        { type: 'tool-call', toolCallId: 'call_a', toolName: 'get_weather', input: { city: 'Paris' } },
      ] },
      { role: 'tool', content: [{
        type: 'tool-result', toolCallId: 'call_a', toolName: 'get_weather',
        output: { type: 'json', value: { forecast: 'sunny' } },
      }] },
    ],
  });
  assert.equal(result.finishReason, 'tool-calls');
  assert.equal(result.toolCalls[0].toolName, 'get_weather');
});
