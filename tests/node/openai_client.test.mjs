// Real-client test: the official `openai` npm SDK drives a running
// `reprise serve` (chat and completions, streaming and not, errors, the
// prompt cache's usage report). Run by tests/server/node_client_test.cc,
// which starts the server and passes its base URL and API key:
//   node openai_client.test.mjs http://127.0.0.1:PORT KEY
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';

const [baseUrl, apiKey] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  console.error('usage: node openai_client.test.mjs BASE_URL API_KEY');
  process.exit(2);
}
const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
// Letters only, so replies round-trip through the byte-level tokenizer.
const letters = { 97: 100, 98: 100, 99: 100 };

test('models.list returns the served model', async () => {
  const page = await client.models.list();
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].object, 'model');
  assert.match(page.data[0].id, /noise/);
});

test('chat completion, non-streaming, with usage and cached_tokens', async () => {
  const r = await client.chat.completions.create({
    model: 'whatever',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello!' }],
    max_tokens: 5,
    temperature: 0,
    logit_bias: letters,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].message.content.length, 5);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 5);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 5);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('chat streaming yields the same text and a usage chunk', async () => {
  const params = {
    model: 'm',
    messages: [{ role: 'user', content: 'Stream, please.' }],
    max_tokens: 6,
    temperature: 0,
    logit_bias: letters,
  };
  const whole = await client.chat.completions.create(params);
  const stream = await client.chat.completions.create({
    ...params,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    const c = chunk.choices[0];
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.ok(usage, 'usage chunk');
  assert.equal(usage.completion_tokens, 6);
  // The same prompt was just answered: its prefix comes from the cache.
  assert.ok(usage.prompt_tokens_details.cached_tokens > 0);
});

test('a follow-up turn reports the conversation as cached', async () => {
  const messages = [{ role: 'user', content: 'Tell me a story about the sea. '.repeat(10) }];
  const first = await client.chat.completions.create({
    model: 'm', messages, max_tokens: 8, temperature: 0, logit_bias: letters,
  });
  messages.push(first.choices[0].message);
  messages.push({ role: 'user', content: 'Go on.' });
  const second = await client.chat.completions.create({
    model: 'm', messages, max_tokens: 8, temperature: 0, logit_bias: letters,
  });
  assert.ok(second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens,
            JSON.stringify(second.usage));
});

test('completions: string prompt, stop string, streaming', async () => {
  const r = await client.completions.create({
    model: 'm', prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logit_bias: letters,
  });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text.length, 6);
  const stop = r.choices[0].text.slice(2, 4);
  const stopped = await client.completions.create({
    model: 'm', prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logit_bias: letters, stop: [stop],
  });
  assert.equal(stopped.choices[0].text, r.choices[0].text.slice(0, r.choices[0].text.indexOf(stop)));
  assert.equal(stopped.choices[0].finish_reason, 'stop');
  const stream = await client.completions.create({
    model: 'm', prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logit_bias: letters, stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('an aborted stream leaves the server healthy', async () => {
  const stream = await client.chat.completions.create({
    model: 'm', messages: [{ role: 'user', content: 'long' }], max_tokens: 500, stream: true,
  });
  let n = 0;
  for await (const _ of stream) {
    if (++n === 3) {
      stream.controller.abort();
      break;
    }
  }
  const health = await fetch(`${baseUrl}/health`);
  assert.equal(health.status, 200);
});

test('errors surface as the SDK error classes with the parameter', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 9 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature');
  await assert.rejects(
    client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(5000) }], max_tokens: 8 }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
  const wrongKey = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: 'nope', maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  await assert.rejects(
    client.get('/nothing-here'), (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
});
