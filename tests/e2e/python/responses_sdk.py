"""Drives a running Tollgate's Responses API with the official OpenAI Python SDK.

Usage: python3 responses_sdk.py BASE_URL --api-key KEY MODEL [MODEL ...]

For every model: `responses.create` with instructions, streamed (event by event, and with the
SDK's accumulating helper), and a function call whose output is sent back in `input`. Then
`previous_response_id`, which a gateway that stores nothing refuses. Exits non-zero on the
first failed check, naming it; prints `ok ...` for each passed group.
"""

import argparse
import json
import sys

import openai
from openai import OpenAI

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def text_checks(client, model):
    response = client.responses.create(
        model=model, instructions="You are terse.", input="What is the capital of France?", max_output_tokens=64
    )
    check(response.object == "response" and response.status == "completed", f"{model}: {response}")
    check("capital of France" in response.output_text, f"{model}: output_text {response.output_text!r}")
    check(response.usage.input_tokens > 0 and response.usage.output_tokens > 0, f"{model}: usage {response.usage}")

    kinds = []
    pieces = []
    stream = client.responses.create(model=model, input="Stream a story", stream=True)
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            pieces.append(event.delta)
    check(kinds[0] == "response.created" and kinds[-1] == "response.completed", f"{model}: events {kinds}")
    check(len(pieces) > 1, f"{model}: {len(pieces)} text pieces")
    check("Stream a story" in "".join(pieces), f"{model}: streamed {''.join(pieces)!r}")

    with client.responses.stream(model=model, input="Tell me more") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    check("Tell me more" in final.output_text, f"{model}: final {final.output_text!r}")
    check(final.usage.output_tokens > 0, f"{model}: final usage {final.usage}")


def tool_checks(client, model):
    response = client.responses.create(model=model, tools=TOOLS, input="What's the weather in Paris?")
    calls = [item for item in response.output if item.type == "function_call"]
    check(calls, f"{model}: no function call in {response.output}")
    call = calls[0]
    check(call.name == "get_weather" and json.loads(call.arguments).get("city"), f"{model}: call {call}")

    followup = client.responses.create(
        model=model,
        tools=TOOLS,
        input=[
            {"role": "user", "content": "What's the weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temp_c": 21})},
        ],
    )
    check(followup.status == "completed" and followup.output_text, f"{model}: follow-up {followup}")

    with client.responses.stream(model=model, tools=TOOLS, input="What's the weather in Paris?") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    check(calls and json.loads(calls[0].arguments).get("city"), f"{model}: streamed call {final.output}")


def error_checks(client):
    try:
        client.responses.create(model="smart", input="x", previous_response_id="resp_123")
        raise AssertionError("previous_response_id was accepted")
    except openai.BadRequestError as err:
        check("previous_response_id" in str(err), f"previous_response_id: {err}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--request-id", default=None, help="x-request-id prefix of every call, to find them in the ledger")
    args = parser.parse_args()
    headers = {"x-request-id": args.request_id} if args.request_id else None
    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, default_headers=headers)
    for model in args.models:
        text_checks(client, model)
        print(f"ok responses {model}")
        tool_checks(client, model)
        print(f"ok tools {model}")
    error_checks(client)
    print("ok errors")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        sys.exit(1)
