"""Drives Tollgate's response cache with the official OpenAI Python SDK.

Usage: python3 cache_sdk.py BASE_URL MODEL --api-key KEY

Checks that cached answers reach the SDK exactly as fresh ones do: a non-streaming answer
replayed as a stream (the SDK's own chunk parsing, usage included), and a streamed answer kept
and served whole. Reads `x-tollgate-cache` through the SDK's raw responses. Exits non-zero on
the first failed check, naming it.
"""

import argparse
import time

from openai import OpenAI


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def ask(client, model, question, stream=False, **extra):
    """The SDK's parsed answer and the cache header, through `with_raw_response`."""
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        temperature=0,
        messages=[
            {"role": "system", "content": "You answer in one sentence."},
            {"role": "user", "content": question},
        ],
        stream=stream,
        **extra,
    )
    return raw.parse(), raw.headers.get("x-tollgate-cache")


def streamed(stream):
    """The text, finish reasons and usage of a streamed answer, as the SDK parsed them."""
    text, finishes, usage = "", [], None
    for chunk in stream:
        check(chunk.object == "chat.completion.chunk", f"chunk object {chunk.object}")
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
        if chunk.usage is not None:
            usage = chunk.usage
    return text, finishes, usage


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("model")
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0)
    model = args.model

    # a whole answer, then the same question streamed from the cache
    fresh, state = ask(client, model, "What is the tallest mountain on Earth?")
    check(state == "miss", f"first ask: {state}")
    time.sleep(0.5)
    stream, state = ask(
        client,
        model,
        "What is the tallest mountain on Earth?",
        stream=True,
        stream_options={"include_usage": True},
    )
    check(state == "hit-exact", f"streamed replay: {state}")
    text, finishes, usage = streamed(stream)
    check(text == fresh.choices[0].message.content, f"replayed text {text!r}")
    check(finishes == ["stop"], f"replayed finish reasons {finishes}")
    check(usage is not None and usage.total_tokens == fresh.usage.total_tokens, f"replayed usage {usage}")
    print("ok replay as stream")

    # a reworded question is served by meaning, with its similarity
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        temperature=0,
        messages=[
            {"role": "system", "content": "You answer in one sentence."},
            {"role": "user", "content": "what's the tallest mountain on earth"},
        ],
    )
    state = raw.headers.get("x-tollgate-cache")
    check(state == "hit-semantic", f"semantic hit: {state}")
    check(float(raw.headers.get("x-tollgate-cache-similarity")) >= 0.9, "similarity header")
    check(raw.parse().choices[0].message.content == fresh.choices[0].message.content, "semantic answer")
    print("ok semantic")

    # a streamed answer is kept once complete and served whole
    stream, state = ask(client, model, "Which ocean is the largest?", stream=True)
    check(state == "miss", f"streamed first ask: {state}")
    text, finishes, _ = streamed(stream)
    check(text and finishes == ["stop"], "streamed answer")
    time.sleep(0.5)
    whole, state = ask(client, model, "Which ocean is the largest?")
    check(state == "hit-exact", f"kept stream: {state}")
    check(whole.choices[0].message.content == text, "kept stream text")
    check(whole.choices[0].finish_reason == "stop", "kept stream finish reason")
    check(whole.usage is not None and whole.usage.completion_tokens > 0, "kept stream usage")
    print("ok stream kept")

    # per-request controls through the SDK's extra headers
    _, state = ask(
        client, model, "Which ocean is the largest?", extra_headers={"Cache-Control": "no-store"}
    )
    check(state == "bypass", f"no-store: {state}")
    print("ok controls")


if __name__ == "__main__":
    main()
