//! `GET /v1/stats`: the stats documents of the token's tenant, read from `herald_stats`.
//!
//! `?topic=<t>` answers `{"topic","cursor","doc"}` (404 `no_stats` before anything was
//! counted for it); without `topic`, `{"stats":[…]}` for every topic the token grants that has
//! a document. `cursor` is the position the document reflects: subscribe from it (with
//! `$stats` for live documents) and nothing is missed or counted twice.

use async_nats::jetstream::kv;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use futures::TryStreamExt;
use herald_core::names::{TenantId, Topic};
use herald_core::streams::STATS_BUCKET;
use herald_stats::store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::TopicSet;
use crate::error::ApiError;
use crate::state::AppState;

/// Query parameters of `GET /v1/stats`.
#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    /// One topic; none = every topic the token grants.
    pub topic: Option<String>,
    /// The token, for clients that cannot set headers.
    pub access_token: Option<String>,
}

/// Answers the current stats document(s).
#[tracing::instrument(skip_all, fields(tenant, sub, topic))]
pub async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let query = super::parsed_query(query)?;
    let claims = super::authenticate(&state, &headers, query.access_token.as_deref()).await?;
    let requested: Vec<String> = query.topic.iter().cloned().collect();
    let scope = claims.scope(&requested, usize::MAX)?;
    let kv = herald_stats::store::bucket(&state.js)
        .await
        .map_err(unavailable)?;
    if let Some(topic) = &query.topic {
        tracing::Span::current().record("topic", topic.as_str());
        let topic = Topic::parse(topic.as_str())
            .map_err(|e| ApiError::BadRequest(format!("invalid topic: {e}")))?;
        return match read(&kv, &claims.tenant, &topic).await? {
            Some(doc) => Ok(Json(doc)),
            None => Err(ApiError::NoStats),
        };
    }
    let topics: Vec<Topic> = match scope {
        TopicSet::Only(set) => set.into_iter().collect(),
        TopicSet::All => stored_topics(&kv, &claims.tenant).await?,
    };
    let mut docs = Vec::with_capacity(topics.len());
    for topic in &topics {
        if let Some(doc) = read(&kv, &claims.tenant, topic).await? {
            docs.push(doc);
        }
    }
    Ok(Json(json!({ "stats": docs })))
}

/// `{"topic","cursor","doc"}` of `tenant`/`topic`, if counted.
async fn read(kv: &kv::Store, tenant: &TenantId, topic: &Topic) -> Result<Option<Value>, ApiError> {
    let snapshot = herald_stats::read(kv, tenant, topic)
        .await
        .map_err(unavailable)?;
    Ok(snapshot.map(|s| json!({"topic": topic, "cursor": s.doc.cursor, "doc": s.doc})))
}

/// The topics of `tenant` with a key in the bucket (one request: the KV stream's subjects).
async fn stored_topics(kv: &kv::Store, tenant: &TenantId) -> Result<Vec<Topic>, ApiError> {
    let prefix = format!("$KV.{STATS_BUCKET}.");
    let subjects = kv
        .stream
        .info_with_subjects(format!("{prefix}{tenant}.>"))
        .await
        .map_err(|err| {
            tracing::warn!(error = %herald_core::error_chain(&err), "listing stats keys failed");
            ApiError::NotReady
        })?;
    let subjects: Vec<(String, usize)> = subjects.try_collect().await.map_err(|err| {
        tracing::warn!(error = %herald_core::error_chain(&err), "listing stats keys failed");
        ApiError::NotReady
    })?;
    let mut topics: Vec<Topic> = subjects
        .iter()
        .filter_map(|(subject, _)| subject.strip_prefix(&prefix))
        .filter_map(herald_stats::doc::parse_key)
        .filter(|(t, _)| t == tenant)
        .map(|(_, topic)| topic)
        .collect();
    topics.sort();
    topics.dedup();
    Ok(topics)
}

/// A document that does not decode is a bug elsewhere (500); anything else is NATS (503).
fn unavailable(err: StoreError) -> ApiError {
    tracing::warn!(error = %herald_core::error_chain(&err), "reading stats failed");
    match err {
        StoreError::Decode { .. } => ApiError::Internal,
        _ => ApiError::NotReady,
    }
}
