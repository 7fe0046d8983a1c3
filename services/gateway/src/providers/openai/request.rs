//! The request OpenAI's format takes: the client's own.

use bytes::Bytes;

use crate::openai::InboundBody;

/// The client's bytes with `model` set to the target's. With `stream_usage`, a streaming
/// request also asks for the closing usage chunk, which the stream relay then reads (and holds
/// back unless the client asked for it too).
pub(super) fn translate_request(model: &str, body: &InboundBody, stream_usage: bool) -> Bytes {
    body.to_openai_body(model, stream_usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;

    #[test]
    fn a_streaming_request_names_the_target_model_and_asks_for_usage() {
        let body = InboundBody::parse(
            Endpoint::ChatCompletions,
            Bytes::from_static(
                br#"{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            ),
        )
        .unwrap();
        let sent: serde_json::Value =
            serde_json::from_slice(&translate_request("gpt-4o", &body, true)).unwrap();
        assert_eq!(sent["model"], "gpt-4o");
        assert_eq!(sent["stream_options"]["include_usage"], true);
        // A server that refuses `stream_options` is not sent one.
        let sent: serde_json::Value =
            serde_json::from_slice(&translate_request("gpt-4o", &body, false)).unwrap();
        assert_eq!(sent["model"], "gpt-4o");
        assert!(sent.get("stream_options").is_none(), "{sent}");
    }
}
