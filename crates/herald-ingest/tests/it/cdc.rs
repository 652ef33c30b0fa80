//! Sequin and Debezium payloads, end to end into JetStream; de-duplication of retries.

use herald_test_support::fixtures;
use serde_json::{Value, json};

use crate::helpers::{TestApp, invalid_shape_message, schema_validator};

#[tokio::test]
async fn every_sequin_fixture_is_stored_as_a_valid_envelope() {
    let app = TestApp::spawn().await;
    let validator = schema_validator();
    for (i, path) in fixtures::SEQUIN_SINGLE.iter().enumerate() {
        let msg = fixtures::json(path);
        let resp = app.sequin(fixtures::bytes(path)).await;
        assert_eq!(resp.status(), 200, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["events"][0]["seq"], i as u64 + 1, "{path}: {body}");
        assert_eq!(body["events"][0]["duplicate"], false);

        let stored = app.stored().await;
        let (subject, event) = stored.last().unwrap();
        let table = msg["metadata"]["table_name"].as_str().unwrap();
        let action = msg["action"].as_str().unwrap();
        assert_eq!(subject, &format!("herald.events.acme.{table}.{action}"));
        assert_eq!(event.id.as_str(), msg["metadata"]["idempotency_key"]);
        assert_eq!(event.data, msg["record"]);
        assert_eq!(
            event.changes.as_ref(),
            msg["changes"].as_object().map(|_| &msg["changes"])
        );
        assert_eq!(
            event.tenant.as_str(),
            "acme",
            "the source decides the tenant"
        );
        let envelope = serde_json::to_value(event).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&envelope)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{path}: {errors:?}");
    }
}

#[tokio::test]
async fn update_keeps_previous_values_and_commit_time() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.sequin(fixtures::bytes("sequin/update.json"))
            .await
            .status(),
        200
    );
    let (_, event) = app.stored().await.remove(0);
    assert_eq!(event.changes, Some(json!({"status": "new", "score": 82})));
    assert_eq!(event.data["status"], "contacted");
    assert_eq!(
        event.time,
        time::macros::datetime!(2026-11-20 09:20:41.004211 UTC)
    );
}

#[tokio::test]
async fn a_batch_is_stored_in_order() {
    let app = TestApp::spawn().await;
    let resp = app.sequin(fixtures::bytes("sequin/batch.json")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let seqs: Vec<u64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    let batch = fixtures::json("sequin/batch.json");
    let ids: Vec<String> = app
        .stored()
        .await
        .into_iter()
        .map(|(_, e)| e.id.to_string())
        .collect();
    let expected: Vec<&str> = batch["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metadata"]["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn the_same_webhook_twice_is_stored_once() {
    let app = TestApp::spawn().await;
    let first: Value = app
        .sequin(fixtures::bytes("sequin/insert.json"))
        .await
        .json()
        .await
        .unwrap();
    let second = app.sequin(fixtures::bytes("sequin/insert.json")).await;
    assert_eq!(
        second.status(),
        200,
        "a retry of a delivered webhook is answered 2xx"
    );
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["events"][0]["duplicate"], true);
    assert_eq!(second["events"][0]["seq"], first["events"][0]["seq"]);
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn a_batch_retried_after_a_partial_failure_stores_each_event_once() {
    let app = TestApp::spawn().await;
    let batch = fixtures::json("sequin/batch.json");
    // The first delivery got only the middle event stored before failing.
    let middle = serde_json::to_vec(&batch["data"][1]).unwrap();
    assert_eq!(app.sequin(middle).await.status(), 200);
    // The producer retries the whole batch.
    let resp: Value = app
        .sequin(fixtures::bytes("sequin/batch.json"))
        .await
        .json()
        .await
        .unwrap();
    let dups: Vec<bool> = resp["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["duplicate"].as_bool().unwrap())
        .collect();
    assert_eq!(dups, [false, true, false]);
    assert_eq!(app.stored_count().await, 3);
    // And a third, complete retry stores nothing new.
    assert_eq!(
        app.sequin(fixtures::bytes("sequin/batch.json"))
            .await
            .status(),
        200
    );
    assert_eq!(app.stored_count().await, 3);
}

#[tokio::test]
async fn tenants_do_not_share_dedup_ids() {
    let app = TestApp::spawn().await;
    let body = json!({"topic": "leads", "action": "insert", "id": "same-id", "data": {}});
    let a: Value = app
        .publish(crate::helpers::API_KEY, body.clone())
        .await
        .json()
        .await
        .unwrap();
    let b: Value = app
        .publish(crate::helpers::OTHER_API_KEY, body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["events"][0]["duplicate"], false);
    assert_eq!(
        b["events"][0]["duplicate"], false,
        "another tenant's id must not suppress this one"
    );
    assert_eq!(app.stored_count().await, 2);
}

#[tokio::test]
async fn debezium_update_becomes_an_update_with_changes() {
    let app = TestApp::spawn().await;
    let headers = herald_test_support::webhook::bearer_headers(crate::helpers::SEQUIN_TOKEN);
    let resp = app
        .webhook("dbz", fixtures::bytes("debezium/update.json"), &headers)
        .await;
    assert_eq!(resp.status(), 200);
    let (subject, event) = app.stored().await.remove(0);
    assert_eq!(subject, "herald.events.acme.leads.update");
    assert_eq!(
        event.data,
        json!({"id": 4711, "status": "contacted", "score": 88})
    );
    assert_eq!(event.changes, Some(json!({"status": "new", "score": 82})));
    assert!(
        event.id.as_str().starts_with("dbz:crm:25166112:"),
        "{}",
        event.id
    );
    assert!(schema_validator().is_valid(&serde_json::to_value(&event).unwrap()));
    // Redelivery of the same change is recognised.
    let again: Value = app
        .webhook("dbz", fixtures::bytes("debezium/update.json"), &headers)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["events"][0]["duplicate"], true);

    // The schema/payload wrapper of the JSON converter, and a delete.
    let mut delete = fixtures::json("debezium/update.json");
    delete["op"] = json!("d");
    delete["after"] = Value::Null;
    let wrapped = json!({"schema": {"type": "struct"}, "payload": delete});
    let resp = app
        .webhook("dbz", serde_json::to_vec(&wrapped).unwrap(), &headers)
        .await;
    assert_eq!(resp.status(), 200);
    let (subject, event) = app.stored().await.remove(1);
    assert_eq!(subject, "herald.events.acme.leads.delete");
    assert_eq!(
        event.data["status"], "new",
        "a delete carries the row as it was"
    );

    let mut truncate = fixtures::json("debezium/update.json");
    truncate["op"] = json!("t");
    let resp = app
        .webhook("dbz", serde_json::to_vec(&truncate).unwrap(), &headers)
        .await;
    crate::helpers::assert_error(resp, 422, "invalid_shape").await;
    assert_eq!(app.stored_count().await, 2);
}

#[tokio::test]
async fn cloudevents_structured_and_batch() {
    let app = TestApp::spawn().await;
    let ce = json!({
        "specversion": "1.0", "id": "ce-1", "source": "/billing", "type": "com.acme.invoice.paid",
        "time": "2026-11-20T10:00:00Z", "datacontenttype": "application/json",
        "topic": "invoices", "action": "paid", "data": {"amount": 12}
    });
    let body = serde_json::to_vec(&ce).unwrap();
    let headers =
        herald_test_support::webhook::standard_headers(crate::helpers::STD_SECRET, "ce-1", &body);
    let resp = app
        .webhook_typed("events", body, &headers, "application/cloudevents+json")
        .await;
    assert_eq!(resp.status(), 200);
    let (subject, event) = app.stored().await.remove(0);
    assert_eq!(subject, "herald.events.acme.invoices.paid");
    assert_eq!(
        (event.ty.as_str(), event.source.as_str()),
        ("com.acme.invoice.paid", "/billing")
    );

    let mut second = ce.clone();
    second["id"] = json!("ce-2");
    let batch = serde_json::to_vec(&json!([ce, second])).unwrap();
    let headers =
        herald_test_support::webhook::standard_headers(crate::helpers::STD_SECRET, "b-1", &batch);
    let resp: Value = app
        .webhook_typed(
            "events",
            batch,
            &headers,
            "application/cloudevents-batch+json",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["events"][0]["duplicate"], true);
    assert_eq!(resp["events"][1]["duplicate"], false);
    assert_eq!(app.stored_count().await, 2);

    // Another tenant than the source's, then this tenant but a CloudEvents version not 1.0.
    let refused = [
        ("globex", "1.0", 400, "invalid_name"),
        ("acme", "0.3", 422, "invalid_shape"),
    ];
    for (tenant, specversion, status, code) in refused {
        let event = json!({"specversion": specversion, "id": "x", "source": "/s", "type": "t", "topic": "a", "action": "b", "tenant": tenant});
        let body = serde_json::to_vec(&event).unwrap();
        let headers =
            herald_test_support::webhook::standard_headers(crate::helpers::STD_SECRET, "x", &body);
        crate::helpers::assert_error(app.webhook("events", body, &headers).await, status, code)
            .await;
    }
    assert_eq!(app.stored_count().await, 2);
}

/// The finding: a Sequin message whose `action` is not one Sequin sends (`"explode"`) was
/// stored and delivered. It is a 422 naming the field, single or batched, and nothing of the
/// batch is published.
#[tokio::test]
async fn sequin_action_outside_insert_update_delete_read_is_refused() {
    let app = TestApp::spawn().await;
    let mut single = fixtures::json("sequin/insert.json");
    single["action"] = json!("explode");
    let message =
        invalid_shape_message(app.sequin(serde_json::to_vec(&single).unwrap()).await).await;
    assert!(
        message.starts_with("action ") && message.contains("explode"),
        "{message}"
    );

    let mut batch = fixtures::json("sequin/batch.json");
    batch["data"][1]["action"] = json!("explode");
    let message =
        invalid_shape_message(app.sequin(serde_json::to_vec(&batch).unwrap()).await).await;
    assert!(message.starts_with("data[1].action "), "{message}");
    assert_eq!(
        app.stored_count().await,
        0,
        "nothing of the batch is published"
    );
    // Every action Sequin does send is still stored.
    for action in ["insert", "update", "delete", "read"] {
        let mut msg = fixtures::json("sequin/insert.json");
        msg["action"] = json!(action);
        msg["metadata"]["idempotency_key"] = json!(format!("key-{action}"));
        assert_eq!(
            app.sequin(serde_json::to_vec(&msg).unwrap()).await.status(),
            200
        );
    }
}
