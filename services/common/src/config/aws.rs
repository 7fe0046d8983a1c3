//! The AWS settings of a provider that signs its requests with SigV4 (Bedrock): its region and
//! key pair, from the provider's configuration or from the standard AWS environment variables.

use super::providers::{PROVIDERS, ProviderSpec, listed};
use super::{ConfigProblem, Credentials, Env, Secret, problem};

/// The standard AWS environment variables, read where a SigV4 provider's configuration leaves
/// its credentials or region out (as the AWS SDKs and CLI do).
pub mod aws_env {
    pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    pub const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
    /// The region, the first one set winning.
    pub const REGION: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];
}

/// What signs a SigV4 provider's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Present with temporary credentials (STS), sent as `x-amz-security-token`.
    pub session_token: Option<Secret>,
}

/// The kinds that sign with AWS credentials, as a sentence's list: `` `bedrock` ``.
fn sigv4_kinds() -> String {
    let kinds: Vec<String> = PROVIDERS
        .iter()
        .filter(|p| matches!(p.credentials, Credentials::AwsSigV4 { .. }))
        .map(|p| format!("`{}`", p.name))
        .collect();
    listed(&kinds, "and")
}

/// An API-key kind given AWS settings: a sign of a wrong `kind`, worth saying so.
pub(super) fn refuse_aws_fields(
    path: &str,
    spec: &ProviderSpec,
    kind: &str,
    problems: &mut Vec<ConfigProblem>,
) {
    let given = [
        ("region", spec.region.is_some()),
        ("aws_access_key_id", spec.aws_access_key_id.is_some()),
        (
            "aws_secret_access_key",
            spec.aws_secret_access_key.is_some(),
        ),
        ("aws_session_token", spec.aws_session_token.is_some()),
    ];
    for (field, _) in given.into_iter().filter(|(_, set)| *set) {
        problems.push(problem(
            format!("{path}.{field}"),
            format!(
                "only {} providers take {field}, not `{kind}`",
                sigv4_kinds()
            ),
        ));
    }
}

/// The region and credentials of a SigV4 provider, from its configuration or else from the
/// standard AWS environment variables.
pub(super) fn aws_credentials(
    path: &str,
    spec: &ProviderSpec,
    env: &dyn Env,
    problems: &mut Vec<ConfigProblem>,
) -> Option<AwsCredentials> {
    let region = spec
        .region
        .clone()
        .or_else(|| aws_env::REGION.iter().find_map(|v| env.var(v)));
    let region = match region {
        None => {
            problems.push(problem(
                format!("{path}.region"),
                format!(
                    "required for kind `{}` (e.g. us-east-1), or set {}",
                    spec.kind.as_str(),
                    listed(&aws_env::REGION, "or")
                ),
            ));
            None
        }
        // It becomes part of a host name and of every signature's scope.
        Some(region)
            if region.is_empty()
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            problems.push(problem(
                format!("{path}.region"),
                format!("`{region}` is not an AWS region such as us-east-1"),
            ));
            None
        }
        Some(region) => Some(region),
    };
    // One set, from one place: a key id from the file with a session token from the
    // environment would sign with credentials that do not belong together.
    let (access_key_id, secret_access_key, session_token, from_env) = match &spec.aws_access_key_id
    {
        Some(id) => (
            Some(id.clone()),
            spec.aws_secret_access_key.clone(),
            spec.aws_session_token.clone(),
            false,
        ),
        None => {
            if spec.aws_secret_access_key.is_some() || spec.aws_session_token.is_some() {
                problems.push(problem(
                    format!("{path}.aws_access_key_id"),
                    "required with aws_secret_access_key or aws_session_token",
                ));
            }
            (
                env.var(aws_env::ACCESS_KEY_ID),
                env.var(aws_env::SECRET_ACCESS_KEY).map(Secret),
                env.var(aws_env::SESSION_TOKEN).map(Secret),
                true,
            )
        }
    };
    let or_env = |var: &str| {
        if from_env {
            format!(", or set {var}")
        } else {
            String::new()
        }
    };
    let access_key_id = access_key_id.filter(|id| !id.is_empty());
    if access_key_id.is_none() {
        problems.push(problem(
            format!("{path}.aws_access_key_id"),
            format!(
                "required for kind `{}`{}",
                spec.kind.as_str(),
                or_env(aws_env::ACCESS_KEY_ID)
            ),
        ));
    }
    let secret_access_key = secret_access_key.filter(|s| !s.0.is_empty());
    if secret_access_key.is_none() {
        problems.push(problem(
            format!("{path}.aws_secret_access_key"),
            format!(
                "required for kind `{}`{}",
                spec.kind.as_str(),
                or_env(aws_env::SECRET_ACCESS_KEY)
            ),
        ));
    }
    Some(AwsCredentials {
        region: region?,
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        session_token: session_token.filter(|t| !t.0.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::providers::validate_provider;
    use super::super::{ProviderConfig, ProviderKind};
    use super::*;

    fn bare(kind: ProviderKind) -> ProviderSpec {
        ProviderSpec::of_kind(kind)
    }

    fn no_env() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Validates one spec: the config, or the problems' paths and messages.
    fn check(
        spec: ProviderSpec,
        env: &BTreeMap<String, String>,
    ) -> Result<ProviderConfig, Vec<(String, String)>> {
        let mut problems = Vec::new();
        validate_provider("b", spec, env, &mut problems)
            .ok_or_else(|| problems.into_iter().map(|p| (p.path, p.message)).collect())
    }

    #[test]
    fn bedrock_takes_its_region_and_credentials_from_the_config() {
        let config = check(
            ProviderSpec {
                region: Some("eu-west-3".into()),
                aws_access_key_id: Some("AKIDEXAMPLE".into()),
                aws_secret_access_key: Some(Secret(
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                )),
                ..bare(ProviderKind::Bedrock)
            },
            // Ignored: the configuration gives the key id, so the set comes from it alone.
            &env(&[
                ("AWS_REGION", "us-east-1"),
                ("AWS_SESSION_TOKEN", "from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.api_base,
            "https://bedrock-runtime.eu-west-3.amazonaws.com"
        );
        let aws = config.aws.unwrap();
        assert_eq!(aws.region, "eu-west-3");
        assert_eq!(aws.access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            aws.secret_access_key.expose(),
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(aws.session_token, None);
        assert!(!format!("{aws:?}").contains("EXAMPLEKEY"));

        let custom = check(
            ProviderSpec {
                api_base: Some("http://127.0.0.1:9/".into()),
                region: Some("us-west-2".into()),
                aws_access_key_id: Some("AKID".into()),
                aws_secret_access_key: Some(Secret("s".into())),
                aws_session_token: Some(Secret("t".into())),
                ..bare(ProviderKind::Bedrock)
            },
            &no_env(),
        )
        .unwrap();
        assert_eq!(custom.api_base, "http://127.0.0.1:9");
        assert_eq!(custom.aws.unwrap().session_token, Some(Secret("t".into())));
    }

    #[test]
    fn bedrock_falls_back_to_the_standard_aws_variables() {
        let config = check(
            bare(ProviderKind::Bedrock),
            &env(&[
                ("AWS_DEFAULT_REGION", "ap-south-1"),
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_SESSION_TOKEN", "token"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.api_base,
            "https://bedrock-runtime.ap-south-1.amazonaws.com"
        );
        let aws = config.aws.unwrap();
        assert_eq!(
            (aws.access_key_id.as_str(), aws.secret_access_key.expose()),
            ("AKIDENV", "secret")
        );
        assert_eq!(aws.session_token, Some(Secret("token".into())));

        // AWS_REGION wins over AWS_DEFAULT_REGION, and the configured region over both.
        let both = env(&[
            ("AWS_REGION", "us-east-2"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]);
        assert_eq!(
            check(bare(ProviderKind::Bedrock), &both)
                .unwrap()
                .aws
                .unwrap()
                .region,
            "us-east-2"
        );
    }

    #[test]
    fn bedrock_problems_name_the_missing_field() {
        let problems = check(bare(ProviderKind::Bedrock), &no_env()).unwrap_err();
        assert_eq!(
            problems,
            [
                (
                    "providers.b.region".to_owned(),
                    "required for kind `bedrock` (e.g. us-east-1), or set AWS_REGION or AWS_DEFAULT_REGION".to_owned()
                ),
                (
                    "providers.b.aws_access_key_id".to_owned(),
                    "required for kind `bedrock`, or set AWS_ACCESS_KEY_ID".to_owned()
                ),
                (
                    "providers.b.aws_secret_access_key".to_owned(),
                    "required for kind `bedrock`, or set AWS_SECRET_ACCESS_KEY".to_owned()
                ),
            ]
        );

        let problems = check(
            ProviderSpec {
                region: Some("US East".into()),
                api_key: Some(Secret("k".into())),
                aws_access_key_id: Some("AKID".into()),
                ..bare(ProviderKind::Bedrock)
            },
            &no_env(),
        )
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "providers.b.region",
                "providers.b.aws_secret_access_key",
                "providers.b.api_key"
            ]
        );
        assert!(
            problems[0].1.contains("`US East` is not an AWS region"),
            "{problems:?}"
        );

        // A secret without its key id is not completed from the environment.
        let problems = check(
            ProviderSpec {
                region: Some("us-east-1".into()),
                aws_secret_access_key: Some(Secret("s".into())),
                ..bare(ProviderKind::Bedrock)
            },
            &env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")]),
        )
        .unwrap_err();
        assert_eq!(problems[0].0, "providers.b.aws_access_key_id");

        // AWS settings on another kind are a mistake worth naming.
        let problems = check(
            ProviderSpec {
                api_key: Some(Secret("k".into())),
                region: Some("us-east-1".into()),
                ..bare(ProviderKind::Anthropic)
            },
            &no_env(),
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [(
                "providers.b.region".to_owned(),
                "only `bedrock` providers take region, not `anthropic`".to_owned()
            )]
        );
    }
}
