//! The NATS identities of `deploy/nats/auth.conf`, with fresh random passwords.

/// The identities of `deploy/nats/auth.conf`.
pub const USERS: [&str; 5] = ["admin", "ingest", "gateway", "notifier", "stats"];

/// The user name cluster routes authenticate with.
pub const ROUTE_USER: &str = "route";

/// Random passwords for every identity of `deploy/nats/auth.conf`, and for cluster routes.
#[derive(Debug, Clone)]
pub struct Identities {
    passwords: Vec<(&'static str, String)>,
    route_password: String,
}

impl Identities {
    /// Fresh random passwords (128 bits each).
    pub fn random() -> Self {
        Self {
            passwords: USERS.iter().map(|u| (*u, random_secret())).collect(),
            route_password: random_secret(),
        }
    }

    /// `user`'s password.
    ///
    /// # Panics
    /// On a user `deploy/nats/auth.conf` does not have (a bug in the caller).
    pub fn password(&self, user: &str) -> &str {
        self.passwords
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.as_str())
            .unwrap_or_else(|| panic!("no NATS identity {user}"))
    }

    /// Every identity's password (for checks that no log holds one).
    pub fn passwords(&self) -> Vec<String> {
        self.passwords.iter().map(|(_, p)| p.clone()).collect()
    }

    /// The routes' password.
    pub fn route_password(&self) -> &str {
        &self.route_password
    }

    /// The variables the deploy/ NATS configs read: `HERALD_NATS_<USER>_PASSWORD`,
    /// `HERALD_NATS_ROUTE_USER`, `HERALD_NATS_ROUTE_PASSWORD` (what `deploy/.env` holds).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .passwords
            .iter()
            .map(|(u, p)| {
                (
                    format!("HERALD_NATS_{}_PASSWORD", u.to_ascii_uppercase()),
                    p.clone(),
                )
            })
            .collect();
        env.push(("HERALD_NATS_ROUTE_USER".into(), ROUTE_USER.into()));
        env.push((
            "HERALD_NATS_ROUTE_PASSWORD".into(),
            self.route_password.clone(),
        ));
        env
    }

    /// A service's `[nats]` settings as `user` on `url`: user, password and its own inbox
    /// prefix (`_INBOX_<user>`), as the compose files set them.
    pub fn nats_config(&self, user: &str, url: &str) -> herald_core::nats::NatsConfig {
        herald_core::nats::NatsConfig {
            url: url.to_owned(),
            user: Some(user.to_owned()),
            password: Some(herald_core::secret::Secret::new(self.password(user))),
            inbox_prefix: format!("_INBOX_{user}"),
            ..Default::default()
        }
    }

    /// The `HERALD_NATS__*` variables for a service binary connecting as `user`.
    pub fn service_env(&self, user: &str) -> Vec<(String, String)> {
        vec![
            ("HERALD_NATS__USER".into(), user.to_owned()),
            (
                "HERALD_NATS__PASSWORD".into(),
                self.password(user).to_owned(),
            ),
            ("HERALD_NATS__INBOX_PREFIX".into(), format!("_INBOX_{user}")),
        ]
    }

    /// Connect options for `user` (with its inbox prefix).
    pub fn connect_options(&self, user: &str) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_user_and_password(
            user.to_owned(),
            self.password(user).to_owned(),
        )
        .custom_inbox_prefix(format!("_INBOX_{user}"))
    }
}

/// 32 hex digits from a CSPRNG.
fn random_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
