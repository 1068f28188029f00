use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::*;

async fn status(app: &TestApp, service: &str) -> ServingStatus {
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

async fn eventually(app: &TestApp, service: &str, want: ServingStatus) {
    for _ in 0..100 {
        if status(app, service).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service:?} never became {want:?}");
}

#[tokio::test]
async fn health_follows_the_database() {
    let app = TestApp::start().await;
    eventually(&app, "", ServingStatus::Serving).await;
    eventually(&app, "tally.v1.IngestService", ServingStatus::Serving).await;

    app.db.drop_now().await;
    eventually(&app, "", ServingStatus::NotServing).await;
    eventually(
        &app,
        "tally.v1.TransactionService",
        ServingStatus::NotServing,
    )
    .await;

    // Liveness does not follow the database: an outage must not restart pods.
    eventually(
        &app,
        tally::server::LIVENESS_SERVICE,
        ServingStatus::Serving,
    )
    .await;

    // With the database gone, calls fail as UNAVAILABLE rather than hang.
    let err = app.submit(clean_order("1")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
}

#[tokio::test]
async fn reflection_lists_every_service_in_both_versions() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = TestApp::start().await;

    let mut alpha =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut stream = alpha
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        resp.message_response
    else {
        panic!("unexpected {resp:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "tally.v1.IngestService",
        "tally.v1.TransactionService",
        "tally.v1.ExceptionService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }

    // Describing the health service needs its descriptors registered too.
    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "grpc.health.v1.Health".into(),
            ),
        ),
    };
    let mut v1c = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let mut stream = v1c
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    assert!(
        matches!(
            resp.message_response,
            Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
        ),
        "{resp:?}"
    );
}

/// What grpcurl 1.8 does to describe a service: ask (v1alpha) for the file
/// that defines it, then for every file it imports, by name.
#[tokio::test]
async fn every_service_and_its_imports_resolve_over_v1alpha() {
    use prost::Message;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::{ServerReflectionRequest, ServerReflectionResponse};

    let app = TestApp::start().await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let mut ask = async |req: MessageRequest| -> ServerReflectionResponse {
        let r = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(req),
        };
        let mut s = client
            .server_reflection_info(tokio_stream::iter(vec![r]))
            .await
            .unwrap()
            .into_inner();
        s.message().await.unwrap().unwrap()
    };
    let files = |resp: ServerReflectionResponse| -> Vec<prost_types::FileDescriptorProto> {
        match resp.message_response {
            Some(MessageResponse::FileDescriptorResponse(f)) => f
                .file_descriptor_proto
                .iter()
                .map(|b| prost_types::FileDescriptorProto::decode(b.as_slice()).unwrap())
                .collect(),
            other => panic!("no file: {other:?}"),
        }
    };
    for service in [
        "tally.v1.IngestService",
        "tally.v1.TransactionService",
        "tally.v1.ExceptionService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        let mut pending: Vec<String> =
            files(ask(MessageRequest::FileContainingSymbol(service.into())).await)
                .into_iter()
                .flat_map(|f| f.dependency)
                .collect();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let found = files(ask(MessageRequest::FileByFilename(name.clone())).await);
            assert!(
                found.iter().any(|f| f.name() == name),
                "{service}: import {name} not served"
            );
            pending.extend(found.into_iter().flat_map(|f| f.dependency));
        }
    }
    // And the error details a client needs to read our INVALID_ARGUMENTs.
    let found = files(
        ask(MessageRequest::FileContainingSymbol(
            "google.rpc.BadRequest".into(),
        ))
        .await,
    );
    assert!(!found.is_empty());
}
