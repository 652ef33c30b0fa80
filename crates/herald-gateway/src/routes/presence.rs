//! `GET /v1/presence`: how many users are connected to presence topics, across gateways, and
//! who, for a token with the claim `presence: true`.
//!
//! `?topics=a,b` (comma-separated; default: every presence topic the token grants) answers
//! `{"presence":[{"topic","count","members"?}]}`. A topic the token does not grant is 403
//! like everywhere; one that is not a presence topic is 404 `not_presence_topic`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::auth::TopicSet;
use crate::error::ApiError;
use crate::routes::{ConnectQuery, authenticate, parsed_query};
use crate::state::AppState;

/// Query parameters of `GET /v1/presence`.
#[derive(Debug, Default, Deserialize)]
pub struct PresenceQuery {
    /// Comma-separated topics; none = every presence topic the token grants.
    pub topics: Option<String>,
    /// The token, for clients that cannot set headers.
    pub access_token: Option<String>,
}

/// One topic's presence.
#[derive(Debug, Serialize)]
pub struct TopicPresence {
    /// The topic.
    pub topic: String,
    /// Connected users (each counted once, whatever its connections and gateways).
    pub count: usize,
    /// Their `sub`s, sorted; only for a token with `presence: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// The answer of `GET /v1/presence`.
#[derive(Debug, Serialize)]
pub struct PresenceResponse {
    /// One entry per topic asked for, sorted by topic.
    pub presence: Vec<TopicPresence>,
}

/// Answers the presence of the topics asked for.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn presence(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PresenceQuery>, QueryRejection>,
) -> Result<Json<PresenceResponse>, ApiError> {
    let query = parsed_query(query)?;
    let claims = authenticate(&state, &headers, query.access_token.as_deref()).await?;
    let requested = ConnectQuery {
        topics: query.topics.clone(),
        ..ConnectQuery::default()
    }
    .topic_list();
    let scope = claims.scope(&requested, state.cfg.limits.topics_per_connection)?;
    let configured = state.presence.topics();
    let topics = match &scope {
        TopicSet::Only(set) if !requested.is_empty() => {
            if let Some(other) = set.iter().find(|t| !configured.contains(&claims.tenant, t)) {
                return Err(ApiError::NotPresenceTopic(other.to_string()));
            }
            set.clone()
        }
        _ => configured.within(&claims.tenant, &scope),
    };
    let presence = topics
        .iter()
        .map(|topic| {
            let members = state.presence.members(&claims.tenant, topic);
            TopicPresence {
                topic: topic.to_string(),
                count: members.len(),
                members: claims.presence.then(|| members.into_iter().collect()),
            }
        })
        .collect();
    Ok(Json(PresenceResponse { presence }))
}
