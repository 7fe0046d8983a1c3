//! The admin GraphQL API through the real binary: the same data as the REST API, GraphiQL for
//! browsers when the deployment turns it on.

use tollgate_mock_provider::{MockConfig, MockServer};

use crate::{Gateway, PROVIDER_KEY, chat_status, graphql, scratch_dir, signup, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_serves_the_callers_organization() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("admin");
    let config = write_config(&dir, &mock, "");
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let tenant = signup(&gateway.url, "admin-e2e@example.com").await;
    let client = reqwest::Client::new();

    let body = graphql(
        &gateway.url,
        Some(&tenant.access_token),
        "{ viewer { email role } keys { id status } }",
    )
    .await;
    assert_eq!(body["data"]["viewer"]["email"], "admin-e2e@example.com");
    assert_eq!(body["data"]["viewer"]["role"], "OWNER");
    assert_eq!(body["data"]["keys"][0]["id"], tenant.key_id.as_str());
    assert_eq!(body["data"]["keys"][0]["status"], "active");

    // the key a GraphQL mutation creates works at the gateway at once
    let body = graphql(
        &gateway.url,
        Some(&tenant.access_token),
        r#"mutation { createKey(input: {name: "from-graphql"}) { secret } }"#,
    )
    .await;
    let secret = body["data"]["createKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(chat_status(&gateway.url, &secret).await, 200);

    // without a token: an error with its code, not an HTTP failure
    let body = graphql(&gateway.url, None, "{ teams { id } }").await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // GraphiQL, and introspection without a token, only with `admin.graphiql: true`
    let res = client
        .get(format!("{}/graphql", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body = graphql(&gateway.url, None, "{ __schema { queryType { name } } }").await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    drop(gateway);
    write_config(&dir, &mock, "\nadmin: { graphiql: true }\n");
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let res = client
        .get(format!("{}/graphql", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
    drop(gateway);
    mock.stop().await;
}
