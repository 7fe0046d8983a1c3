"""Drives a running Tollgate with the official OpenAI Python SDK.

Usage: python3 openai_sdk.py BASE_URL MODEL [MODEL ...]

For every model: a plain completion, a streamed one (with and without usage), a tool call and
its follow-up. Embeddings for the models given with --embed. Exits non-zero on the first
failed check, naming it.
"""

import argparse
import json
import sys

import openai
from openai import OpenAI

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def chat_checks(client, model):
    completion = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        max_tokens=64,
    )
    text = completion.choices[0].message.content
    check(text and "capital of France" in text, f"{model}: completion text {text!r}")
    check(completion.usage.prompt_tokens > 0, f"{model}: usage {completion.usage}")
    check(completion.choices[0].finish_reason == "stop", f"{model}: finish {completion.choices[0].finish_reason}")

    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    check(raw.headers.get("x-request-id"), f"{model}: no x-request-id")
    check(raw.headers.get("x-tollgate-provider"), f"{model}: no x-tollgate-provider")

    pieces = []
    finish = None
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Stream a story"}], stream=True
    )
    for chunk in stream:
        check(chunk.object == "chat.completion.chunk", f"{model}: chunk object {chunk.object}")
        check(len(chunk.choices) > 0, f"{model}: a usage-only chunk the client did not ask for")
        delta = chunk.choices[0].delta
        if delta.content:
            pieces.append(delta.content)
        if chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    check(len(pieces) > 1, f"{model}: stream had {len(pieces)} content pieces")
    check("Stream a story" in "".join(pieces), f"{model}: streamed text {''.join(pieces)!r}")
    check(finish == "stop", f"{model}: stream finish {finish}")

    usage = None
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
    check(usage is not None and usage.completion_tokens > 0, f"{model}: stream usage {usage}")

    call_completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=TOOLS,
    )
    choice = call_completion.choices[0]
    check(choice.finish_reason == "tool_calls", f"{model}: tool finish {choice.finish_reason}")
    call = choice.message.tool_calls[0]
    check(call.function.name == "get_weather", f"{model}: tool name {call.function.name}")
    args = json.loads(call.function.arguments)
    check("city" in args, f"{model}: tool args {args}")

    followup = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})},
        ],
        tools=TOOLS,
    )
    check(followup.choices[0].finish_reason == "stop", f"{model}: follow-up {followup.choices[0].finish_reason}")

    streamed_call = None
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=TOOLS,
        stream=True,
    )
    arguments = ""
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.tool_calls:
            for delta in chunk.choices[0].delta.tool_calls:
                if delta.function and delta.function.name:
                    streamed_call = delta.function.name
                if delta.function and delta.function.arguments:
                    arguments += delta.function.arguments
    check(streamed_call == "get_weather", f"{model}: streamed tool call {streamed_call}")
    check("city" in json.loads(arguments), f"{model}: streamed tool args {arguments!r}")


def embedding_checks(client, model):
    result = client.embeddings.create(model=model, input=["first text", "second text"])
    check(len(result.data) == 2, f"{model}: {len(result.data)} embeddings")
    check(len(result.data[0].embedding) > 0, f"{model}: empty embedding")
    check(result.data[0].embedding != result.data[1].embedding, f"{model}: identical embeddings")
    # The SDK asks for base64 by default and decodes it; explicit floats must give the same vectors.
    floats = client.embeddings.create(model=model, input=["first text"], encoding_format="float")
    got, want = floats.data[0].embedding, result.data[0].embedding
    check(len(got) == len(want), f"{model}: float and base64 dimensions differ")
    check(all(abs(a - b) < 1e-6 for a, b in zip(got, want)), f"{model}: float and base64 vectors differ")


def error_checks(client):
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as err:
        check(err.body["code"] == "model_not_found", f"unknown model body {err.body}")
    try:
        client.chat.completions.create(model="smart", messages=[])
        raise AssertionError("empty messages accepted")
    except openai.BadRequestError as err:
        check(err.body["param"] == "messages", f"empty messages body {err.body}")
    stranger = OpenAI(base_url=client.base_url, api_key="tg-" + "x" * 43, max_retries=0)
    try:
        stranger.chat.completions.create(model="smart", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("unknown key accepted")
    except openai.AuthenticationError as err:
        check(err.body["code"] == "invalid_api_key", f"unknown key body {err.body}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--embed", action="append", default=[])
    parser.add_argument("--api-key", required=True, help="a Tollgate virtual key")
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0)
    for model in args.models:
        chat_checks(client, model)
        print(f"ok chat {model}")
    for model in args.embed:
        embedding_checks(client, model)
        print(f"ok embeddings {model}")
    error_checks(client)
    print("ok errors")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
