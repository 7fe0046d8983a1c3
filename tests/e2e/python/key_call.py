"""One chat completion through Tollgate with the OpenAI SDK and a given virtual key.

Prints `ok <model>` and exits 0 on success; prints `status <code> <error code>` and exits 3
when the gateway refuses the call (an API error), so that the caller can tell which.
"""

import sys

import openai
from openai import OpenAI


def main():
    base_url, key, model = sys.argv[1:4]
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=10)
    try:
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "ping"}]
        )
    except openai.APIStatusError as err:
        code = (err.body or {}).get("code") if isinstance(err.body, dict) else None
        print(f"status {err.status_code} {code}")
        sys.exit(3)
    assert answer.choices[0].message.content, answer
    print(f"ok {model}")


if __name__ == "__main__":
    main()
