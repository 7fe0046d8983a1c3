//! Image generation and audio transcription driven by the official OpenAI Python SDK
//! (`images.generate`, `audio.transcriptions.create` with an uploaded file) against the real
//! binary and the mock's OpenAI routes: answers as the provider gave them, token usage metered
//! where the answer reports it, and every answered request in the ledger.

use tollgate_mock_provider::{MockConfig, MockServer};

use super::{Gateway, PROVIDER_KEY, config_for, run_python, scratch_dir, signup};

/// Answered requests the script makes: two image models, three transcriptions.
const ANSWERED: usize = 5;

/// (requested model, input tokens, output tokens) of the ledger's answered rows for `prefix`,
/// polled for until all [`ANSWERED`] are in (usage lands off the request path).
async fn answered_rows(database: &str, prefix: &str) -> Vec<(String, i64, i64)> {
    sqlx::any::install_default_drivers();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let pool = sqlx::AnyPool::connect(database).await.unwrap();
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT requested_model, input_tokens, output_tokens FROM usage_events \
             WHERE request_id LIKE $1 AND status = 200 ORDER BY time",
        )
        .bind(format!("{prefix}%"))
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        if rows.len() >= ANSWERED || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_transcriptions_through_the_openai_sdk() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = scratch_dir("media");
    let config = dir.join("tollgate.yaml");
    std::fs::write(&config, config_for(&mock)).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let data_dir = data.display().to_string();
    let gateway = Gateway::start(&config, &[PROVIDER_KEY, ("TOLLGATE_DATA_DIR", &data_dir)]);
    let tenant = signup(&gateway.url, "media@example.com").await;

    let args = vec![
        format!("{}/v1", gateway.url),
        "--api-key".into(),
        tenant.key.clone(),
        "--request-id".into(),
        "media".into(),
    ];
    let output = run_python("media_sdk.py", args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "image and transcription SDK checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok errors"), "{stdout}");

    // The upstream got the provider's model names, at OpenAI's paths, with the deployment's key.
    let stats = mock.stats();
    assert_eq!(stats.by_route["openai.images"], 2, "{stats:?}");
    assert_eq!(stats.by_route["openai.transcriptions"], 3, "{stats:?}");
    assert_eq!(
        stats.last_request.as_ref().unwrap()["models"][0],
        "whisper-1"
    );
    assert_eq!(stats.last_headers["authorization"], "Bearer sk-openai-e2e");

    let database = format!("sqlite://{}", data.join("tollgate.db").display());
    let rows = answered_rows(&database, "media").await;
    assert_eq!(rows.len(), ANSWERED, "{rows:?}");
    let row = |model: &str| rows.iter().find(|(m, _, _)| m == model).unwrap().clone();
    let (_, input, output) = row("openai/gpt-image-1");
    assert!(
        input > 0 && output == 2 * 6240,
        "gpt-image-1: {input} in, {output} out"
    );
    let (_, input, output) = row("openai/gpt-4o-transcribe");
    assert!(
        input > 0 && output > 0,
        "gpt-4o-transcribe: {input} in, {output} out"
    );
    // Priced per image or per minute: recorded, without token usage.
    for model in [
        "openai/dall-e-3",
        "openai/whisper-1",
        "openai/gpt-4o-mini-transcribe",
    ] {
        let (_, input, output) = row(model);
        assert_eq!((input, output), (0, 0), "{model}");
    }

    drop(gateway);
    mock.stop().await;
}
