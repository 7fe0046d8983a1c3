//! The request OpenAI's format takes: the client's own.

use bytes::Bytes;

use crate::openai::InboundBody;

/// The client's bytes with `model` set to the target's. A streaming request also asks for the
/// closing usage chunk, which the stream relay then reads (and holds back unless the client
/// asked for it too).
pub(super) fn translate_request(model: &str, body: &InboundBody) -> Bytes {
    body.to_openai_body(model)
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
            serde_json::from_slice(&translate_request("gpt-4o", &body)).unwrap();
        assert_eq!(sent["model"], "gpt-4o");
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }
}
