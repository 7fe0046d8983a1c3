"""Drives a running Tollgate with the official Anthropic Python SDK.

Usage: python3 anthropic_sdk.py BASE_URL --api-key KEY MODEL [MODEL ...]

For every model: a message with a system prompt, a stream read both event by event and with
the SDK's accumulating helper, a tool call and its result sent back, and a token count. Then
the errors the SDK raises for an unknown model, a bad request and a wrong key. Exits non-zero
on the first failed check, naming it; prints `ok ...` for each passed group.
"""

import argparse
import json
import sys

import anthropic

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]

STREAM_EVENTS = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def message_checks(client, model):
    message = client.messages.create(
        model=model,
        max_tokens=64,
        system="You are terse.",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    check(message.type == "message" and message.role == "assistant", f"{model}: {message}")
    check(message.id.startswith("msg_"), f"{model}: id {message.id}")
    text = message.content[0].text
    check("capital of France" in text, f"{model}: text {text!r}")
    check(message.stop_reason == "end_turn", f"{model}: stop_reason {message.stop_reason}")
    check(message.usage.input_tokens > 0 and message.usage.output_tokens > 0, f"{model}: usage {message.usage}")

    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    check(raw.headers.get("x-request-id"), f"{model}: no x-request-id")

    seen = []
    pieces = []
    with client.messages.create(
        model=model,
        max_tokens=64,
        stream=True,
        messages=[{"role": "user", "content": "Stream a story"}],
    ) as stream:
        for event in stream:
            seen.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                pieces.append(event.delta.text)
    for kind in STREAM_EVENTS:
        check(kind in seen, f"{model}: no {kind} event in {seen}")
    check(seen[0] == "message_start" and seen[-1] == "message_stop", f"{model}: order {seen}")
    check(len(pieces) > 1, f"{model}: {len(pieces)} text pieces")
    check("Stream a story" in "".join(pieces), f"{model}: streamed {''.join(pieces)!r}")

    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "Tell me more"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    check("Tell me more" in streamed, f"{model}: text_stream {streamed!r}")
    check(final.content[0].text == streamed, f"{model}: final {final.content} vs {streamed!r}")
    check(final.usage.output_tokens > 0, f"{model}: final usage {final.usage}")
    check(final.stop_reason == "end_turn", f"{model}: final stop {final.stop_reason}")


def tool_checks(client, model):
    question = {"role": "user", "content": "What's the weather in Paris?"}
    message = client.messages.create(model=model, max_tokens=128, tools=TOOLS, messages=[question])
    check(message.stop_reason == "tool_use", f"{model}: stop {message.stop_reason}")
    call = next(block for block in message.content if block.type == "tool_use")
    check(call.name == "get_weather" and call.input.get("city"), f"{model}: call {call}")

    followup = client.messages.create(
        model=model,
        max_tokens=128,
        tools=TOOLS,
        messages=[
            question,
            {"role": "assistant", "content": [block.model_dump() for block in message.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": json.dumps({"temp_c": 21})}
                ],
            },
        ],
    )
    check(followup.stop_reason == "end_turn", f"{model}: follow-up stop {followup.stop_reason}")

    with client.messages.stream(model=model, max_tokens=128, tools=TOOLS, messages=[question]) as stream:
        final = stream.get_final_message()
    call = next((block for block in final.content if block.type == "tool_use"), None)
    check(call is not None and call.input.get("city"), f"{model}: streamed call {final.content}")

    count = client.messages.count_tokens(model=model, tools=TOOLS, messages=[question])
    check(count.input_tokens > 0, f"{model}: count {count}")


def error_checks(client, base_url):
    try:
        client.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("an unknown model was answered")
    except anthropic.NotFoundError as err:
        check(err.body["type"] == "error", f"unknown model body {err.body}")
    try:
        client.messages.create(model="smart", max_tokens=5, messages=[{"role": "robot", "content": "x"}])
        raise AssertionError("a bad role was answered")
    except anthropic.BadRequestError as err:
        check("messages.0.role" in str(err), f"bad role: {err}")
    stranger = anthropic.Anthropic(base_url=base_url, api_key="tg-not-a-key", max_retries=0)
    try:
        stranger.messages.create(model="smart", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("a wrong key was answered")
    except anthropic.AuthenticationError as err:
        check(err.body["error"]["type"] == "authentication_error", f"wrong key body {err.body}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--request-id", default=None, help="x-request-id prefix of every call, to find them in the ledger")
    parser.add_argument("--auth-header", action="store_true", help="send the key as Authorization: Bearer")
    args = parser.parse_args()
    headers = {"x-request-id": args.request_id} if args.request_id else None
    if args.auth_header:
        client = anthropic.Anthropic(
            base_url=args.base_url, auth_token=args.api_key, api_key=None, max_retries=0, default_headers=headers
        )
    else:
        client = anthropic.Anthropic(base_url=args.base_url, api_key=args.api_key, max_retries=0, default_headers=headers)
    for model in args.models:
        message_checks(client, model)
        print(f"ok messages {model}")
        tool_checks(client, model)
        print(f"ok tools {model}")
    error_checks(client, args.base_url)
    print("ok errors")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        sys.exit(1)
