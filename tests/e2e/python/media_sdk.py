"""Drives a running Tollgate's image generation and audio transcription routes with the official
OpenAI Python SDK.

Usage: python3 media_sdk.py BASE_URL --api-key KEY --request-id PREFIX

`images.generate` on a gpt-image model (token usage) and a dall-e one (none), then a stream,
which the gateway refuses; `audio.transcriptions.create` with an uploaded file as JSON (token
usage), as text, and as whisper-1's verbose JSON (duration usage); then a model at a provider
that serves neither. Exits non-zero on the first failed check, naming it; prints `ok ...` for
each passed group.
"""

import argparse
import base64
import sys

import openai
from openai import OpenAI

# A few bytes standing for a WAV file; the mock only counts them.
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00" + bytes(range(256)) * 4


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def image_checks(client):
    result = client.images.generate(
        model="openai/gpt-image-1", prompt="A red fox in the snow", n=2, size="1024x1536", quality="high"
    )
    check(len(result.data) == 2, f"gpt-image: {len(result.data)} images")
    png = base64.b64decode(result.data[0].b64_json)
    check(png.startswith(b"\x89PNG"), f"gpt-image: not a PNG: {png[:8]!r}")
    check(result.usage is not None and result.usage.output_tokens == 2 * 6240, f"gpt-image: usage {result.usage}")
    check(result.usage.input_tokens_details.text_tokens > 0, f"gpt-image: details {result.usage}")

    result = client.images.generate(model="openai/dall-e-3", prompt="A lighthouse", response_format="b64_json")
    check(result.usage is None, f"dall-e: usage {result.usage}")
    check(base64.b64decode(result.data[0].b64_json).startswith(b"\x89PNG"), "dall-e: not a PNG")

    try:
        client.images.generate(model="openai/gpt-image-1", prompt="x", stream=True, partial_images=2)
        raise AssertionError("a streamed image was accepted")
    except openai.BadRequestError as err:
        check("stream" in str(err), f"stream: {err}")
    try:
        client.images.generate(model="openai/gpt-image-1", prompt="x", n=11)
        raise AssertionError("n=11 was accepted")
    except openai.BadRequestError as err:
        check(err.body.get("param") == "n", f"n: {err.body}")


def transcription_checks(client):
    result = client.audio.transcriptions.create(
        model="openai/gpt-4o-transcribe", file=("hello.wav", AUDIO, "audio/wav"), language="en"
    )
    check(f"hello.wav, {len(AUDIO)} bytes" in result.text, f"transcribe: {result.text!r}")
    check(result.usage.type == "tokens" and result.usage.output_tokens > 0, f"transcribe: usage {result.usage}")

    text = client.audio.transcriptions.create(
        model="openai/gpt-4o-mini-transcribe", file=("hello.wav", AUDIO), response_format="text"
    )
    check(isinstance(text, str) and text.startswith("A transcript of hello.wav"), f"text: {text!r}")

    verbose = client.audio.transcriptions.create(
        model="openai/whisper-1",
        file=("hello.wav", AUDIO),
        response_format="verbose_json",
        timestamp_granularities=["segment"],
    )
    check(verbose.text and verbose.usage.type == "duration", f"whisper-1: {verbose}")

    try:
        client.audio.transcriptions.create(model="openai/gpt-4o-transcribe", file=("a.wav", AUDIO), stream=True)
        raise AssertionError("a streamed transcription was accepted")
    except openai.BadRequestError as err:
        check(err.body.get("param") == "stream", f"stream: {err.body}")


def error_checks(client):
    for call in (
        lambda: client.images.generate(model="flash", prompt="x"),
        lambda: client.audio.transcriptions.create(model="flash", file=("a.wav", AUDIO)),
    ):
        try:
            call()
            raise AssertionError("a Gemini target served an OpenAI-only endpoint")
        except openai.BadRequestError as err:
            check("OpenAI-format providers" in str(err), f"gemini: {err}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--request-id", required=True, help="x-request-id of every call, to find them in the ledger")
    args = parser.parse_args()
    headers = {"x-request-id": args.request_id}
    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, default_headers=headers)
    image_checks(client)
    print("ok images")
    transcription_checks(client)
    print("ok transcriptions")
    error_checks(client)
    print("ok errors")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        sys.exit(1)
