//! The gateway's guardrails stage backed by the guardrails service: the caller's policy (the
//! configuration's, then its organization's, team's and key's), the input check on the
//! OpenAI-shaped body, and the answer checks handed to whatever answers the request.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::OnceCell;
use tollgate_cache::embedder::Embedder;
use tollgate_common::GuardrailAction;
use tollgate_common::config::Config;
use tollgate_common::outbound::OutboundPolicy;
use tollgate_gateway::GatewayError;
use tollgate_gateway::openai::InboundBody;
use tollgate_gateway::pipeline::{
    AnswerGuard, GuardedText, Guardrails, InputChecked, RequestContext, StreamGuard,
};
use tollgate_guardrails::answer::{AnswerRules, Flow, StreamRules};
use tollgate_guardrails::request::{Refused, Request};
use tollgate_guardrails::topics::TopicEmbedder;
use tollgate_guardrails::webhook::Call;

/// Policies applied to every request of the keys they are set for.
pub struct PolicyGuardrails {
    engine: Arc<tollgate_guardrails::Guardrails>,
}

impl PolicyGuardrails {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let embedder = Arc::new(TopicEmbedding {
            config: config.clone(),
            embedder: OnceCell::new(),
        });
        let engine = tollgate_guardrails::Guardrails::new(
            &config.guardrails,
            &OutboundPolicy::new(&config.outbound),
            Some(embedder),
        )
        .map_err(|error| anyhow::anyhow!(error))?;
        Ok(PolicyGuardrails {
            engine: Arc::new(engine),
        })
    }
}

/// Denied topics are measured with the semantic cache's embedder (`cache.embedder`), made on
/// first use: most deployments never need it, and a sentence model takes memory and time to
/// load.
struct TopicEmbedding {
    config: Config,
    embedder: OnceCell<Arc<dyn Embedder>>,
}

#[async_trait]
impl TopicEmbedder for TopicEmbedding {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let embedder = self
            .embedder
            .get_or_try_init(|| async {
                let config = self.config.clone();
                tokio::task::spawn_blocking(move || crate::caching::embedder(&config))
                    .await
                    .map_err(|error| error.to_string())?
                    .map_err(|error| format!("{error:#}"))
            })
            .await?;
        embedder
            .embed(texts)
            .await
            .map_err(|error| error.to_string())
    }
}

#[async_trait]
impl Guardrails for PolicyGuardrails {
    async fn check_input(
        &self,
        ctx: &mut RequestContext,
        body: &InboundBody,
    ) -> Result<InputChecked, GatewayError> {
        let Some(policy) = self.engine.policy(&ctx.key) else {
            return Ok(InputChecked::default());
        };
        let request = Request {
            model: &body.model,
            body: body.raw(),
            generates: body.endpoint.generates(),
            max_output_tokens: body.max_output_tokens,
        };
        let call = Call {
            request_id: ctx.request_id.clone(),
            organization_id: ctx.key.org_id.map(|org| org.to_string()),
            model: body.model.clone(),
        };
        let prompt_tokens = || prompt_tokens(body);
        let checked = self
            .engine
            .check_request(&policy, &request, &call, prompt_tokens)
            .await;
        match checked {
            Ok(checked) => {
                ctx.guardrails.extend(checked.actions.into_vec());
                let answer = policy.checks_answers().then(|| {
                    let rules = AnswerRules::new(policy.clone(), checked.placeholders)
                        .calling_out(self.engine.clone(), call);
                    Arc::new(AnswerChecks(rules)) as Arc<dyn AnswerGuard>
                });
                Ok(InputChecked {
                    body: checked.body.map(Bytes::from),
                    answer,
                })
            }
            Err(refused) => Err(refusal(refused, &mut ctx.guardrails)),
        }
    }
}

/// A request's prompt tokens, estimated from its JSON without the tokenizer: a maximum is a
/// coarse bound, and this runs before admission's own count is at hand.
fn prompt_tokens(body: &InboundBody) -> u64 {
    let raw = body.raw();
    body.field("messages")
        .and_then(tollgate_gateway::tokens::chat_prompt_estimate)
        .unwrap_or_else(|| tollgate_gateway::tokens::json_estimate(raw))
}

fn refusal(refused: Refused, actions: &mut Vec<GuardrailAction>) -> GatewayError {
    actions.extend(refused.actions.into_vec());
    GatewayError::GuardrailViolation {
        rule: refused.blocked.rule.label(),
        reason: refused.blocked.reason,
    }
}

struct AnswerChecks(AnswerRules);

#[async_trait]
impl AnswerGuard for AnswerChecks {
    async fn check(
        &self,
        answer: &[u8],
        actions: &mut Vec<GuardrailAction>,
    ) -> Result<Option<Bytes>, GatewayError> {
        match self.0.check(answer).await {
            Ok((body, done)) => {
                actions.extend(done.into_vec());
                Ok(body.map(Bytes::from))
            }
            Err(refused) => Err(refusal(refused, actions)),
        }
    }

    fn stream(&self) -> Box<dyn StreamGuard> {
        Box::new(StreamChecks {
            rules: self.0.stream(),
            refused: Vec::new(),
        })
    }
}

struct StreamChecks {
    rules: StreamRules,
    /// What was done up to a refusal (the rules hand those over with it).
    refused: Vec<GuardrailAction>,
}

impl StreamChecks {
    fn flow(&mut self, flow: Result<Flow, Refused>) -> Result<GuardedText, GatewayError> {
        match flow {
            Ok(Flow::Send(text)) => Ok(GuardedText::Send(text)),
            Ok(Flow::Cut(text)) => Ok(GuardedText::Cut(text)),
            Err(refused) => Err(refusal(refused, &mut self.refused)),
        }
    }
}

impl StreamGuard for StreamChecks {
    fn push(&mut self, index: u32, text: &str) -> Result<GuardedText, GatewayError> {
        let flow = self.rules.push(index, text);
        self.flow(flow)
    }

    fn finish(&mut self, index: u32) -> Result<GuardedText, GatewayError> {
        let flow = self.rules.finish(index);
        self.flow(flow)
    }

    fn actions(&self) -> Vec<GuardrailAction> {
        let mut actions = self.refused.clone();
        actions.extend(self.rules.actions().as_slice().iter().cloned());
        actions
    }
}
