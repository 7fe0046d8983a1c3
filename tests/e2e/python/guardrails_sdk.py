"""Drives a running Tollgate whose guardrail policy redacts e-mail addresses (restoring them in
answers), refuses payment cards and redacts phone numbers from answers, with the official OpenAI
and Anthropic Python SDKs.

Usage: python3 guardrails_sdk.py BASE_URL --api-key KEY

Chat completions (whole and streamed), `responses.create` and Anthropic's `messages.create`
(whole and streamed): the caller's own e-mail address comes back in the answer, a payment card
is refused with the SDK's BadRequestError naming the rule, and a phone number the model repeats
is redacted from the answer. Exits non-zero on the first failed check, naming it; prints
`ok ...` for each passed group.
"""

import argparse
import sys

import anthropic
import openai
from openai import OpenAI

EMAIL = "grace@example.com"
CARD = "5555 5555 5555 4444"
PHONE = "+1 415 555 2671"


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def openai_checks(client):
    answer = client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": f"Reply to {EMAIL} kindly"}]
    )
    text = answer.choices[0].message.content
    check(EMAIL in text and "<EMAIL_" not in text, f"chat: {text!r}")

    stream = client.chat.completions.create(
        model="openai/gpt-4o", stream=True, messages=[{"role": "user", "content": f"Ring {PHONE} at noon"}]
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    check("<PHONE_1>" in text and "555 2671" not in text, f"chat stream: {text!r}")

    try:
        client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": f"Charge {CARD} now"}]
        )
        raise AssertionError("a card was sent")
    except openai.BadRequestError as err:
        check(err.status_code == 400 and err.code == "default-pii/input.pii", f"chat refusal: {err.body}")
        check(err.type == "guardrail_violation", f"chat refusal type: {err.body}")
        check("5555" not in str(err), "the refusal repeats the card")

    response = client.responses.create(model="openai/gpt-4o", input=f"Reply to {EMAIL} kindly")
    check(EMAIL in response.output_text, f"responses: {response.output_text!r}")
    try:
        client.responses.create(model="openai/gpt-4o", input=f"Charge {CARD} now")
        raise AssertionError("a card was sent through responses")
    except openai.BadRequestError as err:
        check(err.code == "default-pii/input.pii", f"responses refusal: {err.body}")
    print("ok openai")


def anthropic_checks(client):
    message = client.messages.create(
        model="smart", max_tokens=64, messages=[{"role": "user", "content": f"Reply to {EMAIL} kindly"}]
    )
    text = message.content[0].text
    check(EMAIL in text and "<EMAIL_" not in text, f"messages: {text!r}")

    with client.messages.stream(
        model="smart", max_tokens=64, messages=[{"role": "user", "content": f"Ring {PHONE} at noon"}]
    ) as stream:
        text = "".join(stream.text_stream)
    check("<PHONE_1>" in text and "555 2671" not in text, f"messages stream: {text!r}")

    try:
        client.messages.create(
            model="smart", max_tokens=64, messages=[{"role": "user", "content": f"Charge {CARD} now"}]
        )
        raise AssertionError("a card was sent through messages")
    except anthropic.BadRequestError as err:
        check("default-pii/input.pii" in str(err), f"messages refusal: {err}")
    print("ok anthropic")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    openai_checks(OpenAI(base_url=f"{args.base_url}/v1", api_key=args.api_key, max_retries=0))
    anthropic_checks(anthropic.Anthropic(base_url=args.base_url, api_key=args.api_key, max_retries=0))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"FAILED {failure}", file=sys.stderr)
        sys.exit(1)
