//! Embeddings on Vertex AI: the text-embedding models' `:predict`, one instance per input.
//!
//! `{"instances": [{"content": "..."}], "parameters": {"outputDimensionality": N}}` answers
//! `{"predictions": [{"embeddings": {"values": [...], "statistics": {"token_count": N}}}]}`.
//! Unlike the Gemini API's `batchEmbedContents`, Vertex counts the tokens it embedded.
//! <https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api>

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tollgate_common::TokenUsage;

use crate::error::GatewayError;
use crate::openai::InboundBody;
use crate::openai::response::{Embedding, EmbeddingVector, EmbeddingsResponse, EmbeddingsUsage};
use crate::providers::Translated;
use crate::providers::gemini::bare_model;

#[derive(Serialize)]
struct PredictRequest<'a> {
    instances: Vec<Instance<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Parameters>,
}

#[derive(Serialize)]
struct Instance<'a> {
    content: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    output_dimensionality: u32,
}

pub(super) fn translate_request(body: &InboundBody) -> Result<Bytes, GatewayError> {
    let request = body.embeddings()?;
    let texts = request.input.texts().ok_or_else(|| {
        GatewayError::Unsupported("Vertex AI embeddings take text input, not token arrays".into())
    })?;
    let wire = PredictRequest {
        instances: texts
            .into_iter()
            .map(|content| Instance { content })
            .collect(),
        parameters: request.dimensions.map(|output_dimensionality| Parameters {
            output_dimensionality,
        }),
    };
    let bytes = serde_json::to_vec(&wire).map_err(|e| {
        GatewayError::Internal(format!(
            "cannot encode the Vertex AI embeddings request: {e}"
        ))
    })?;
    Ok(Bytes::from(bytes))
}

#[derive(Deserialize)]
struct PredictResponse {
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: PredictedEmbedding,
}

#[derive(Deserialize)]
struct PredictedEmbedding {
    #[serde(default)]
    values: Vec<f32>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    token_count: Option<f64>,
}

pub(super) fn translate_response(
    model: &str,
    request: &InboundBody,
    body: &[u8],
) -> Result<Translated, String> {
    let base64 = request
        .embeddings()
        .is_ok_and(|r| r.encoding_format.as_deref() == Some("base64"));
    let response: PredictResponse = serde_json::from_slice(body)
        .map_err(|e| format!("Vertex AI answered embeddings with a body we cannot read: {e}"))?;
    let mut counted = Some(0u64);
    let mut data = Vec::with_capacity(response.predictions.len());
    for (prediction, index) in response.predictions.into_iter().zip(0u32..) {
        // Counts come as JSON numbers (`6`, sometimes `6.0`); a missing one leaves the
        // gateway to count for itself rather than report a partial sum.
        let tokens = prediction
            .embeddings
            .statistics
            .and_then(|s| s.token_count)
            .filter(|n| n.is_finite() && *n >= 0.0);
        counted = counted.zip(tokens).map(|(sum, n)| sum + n as u64);
        data.push(Embedding {
            object: "embedding".into(),
            index,
            embedding: EmbeddingVector::encode(prediction.embeddings.values, base64),
        });
    }
    let counted = counted.filter(|_| !data.is_empty());
    let tokens = counted.unwrap_or_default();
    let out = EmbeddingsResponse {
        object: "list".into(),
        data,
        model: bare_model(model).to_owned(),
        usage: EmbeddingsUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    let bytes =
        serde_json::to_vec(&out).map_err(|e| format!("cannot encode the embeddings: {e}"))?;
    Ok(Translated {
        body: Bytes::from(bytes),
        usage: counted.map(|input_tokens| TokenUsage {
            input_tokens,
            ..TokenUsage::default()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::Endpoint;
    use crate::providers::tests_support::fixture;
    use serde_json::{Value, json};

    fn request(body: Value) -> InboundBody {
        InboundBody::parse(Endpoint::Embeddings, Bytes::from(body.to_string())).unwrap()
    }

    #[test]
    fn one_instance_per_text_and_the_dimensions_as_a_parameter() {
        let bytes = translate_request(&request(
            json!({"model": "e", "input": ["a", "b"], "dimensions": 256}),
        ))
        .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({"instances": [{"content": "a"}, {"content": "b"}],
                   "parameters": {"outputDimensionality": 256}})
        );
        let bytes = translate_request(&request(json!({"model": "e", "input": "a"}))).unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body, json!({"instances": [{"content": "a"}]}));
        let tokens = request(json!({"model": "e", "input": [1, 2, 3]}));
        assert!(matches!(
            translate_request(&tokens),
            Err(GatewayError::Unsupported(_))
        ));
    }

    #[test]
    fn predictions_become_openai_embeddings_with_the_counted_tokens() {
        let asked = request(json!({"model": "e", "input": ["a", "b"]}));
        let translated = translate_response(
            "text-embedding-005",
            &asked,
            &fixture("vertex", "predict_embeddings.json"),
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        assert_eq!(body["object"], "list");
        assert_eq!(body["model"], "text-embedding-005");
        assert_eq!(body["data"][1]["index"], 1);
        assert_eq!(body["data"][0]["embedding"], json!([0.25, -0.5, 0.125]));
        assert_eq!(body["usage"]["prompt_tokens"], 9);
        assert_eq!(translated.usage.unwrap().input_tokens, 9);

        let no_counts = br#"{"predictions": [{"embeddings": {"values": [1.0]}}]}"#;
        assert!(
            translate_response("e", &asked, no_counts)
                .unwrap()
                .usage
                .is_none()
        );
        assert!(translate_response("e", &asked, b"[]").is_err());
        assert!(translate_response("e", &asked, br#"{"data": []}"#).is_err());
    }
}
