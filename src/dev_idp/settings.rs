//! What the provider serves: one user pool, its app clients and users, token
//! lifetimes and refresh-token rotation, as a Cognito user pool is configured.
//! The defaults are the demo's: one public client, two users.

use crate::oidc::metadata::CognitoIssuer;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub region: String,
    /// `{region}_{id}`, as Cognito names pools.
    pub user_pool_id: String,
    /// Issue tokens with Cognito's own issuer in this form (`"original"` or
    /// `"updated"`), for a gateway that derives it from the region and pool and fetches
    /// discovery here through `provider.issuer_endpoint`. Unset: the issuer is where
    /// this provider is reached, `{base_url}/{userPoolId}`.
    pub cognito_issuer: Option<CognitoIssuer>,
    pub clients: Vec<ClientSettings>,
    pub users: Vec<UserSettings>,
    #[serde(with = "humantime_serde_compat")]
    pub access_token_ttl: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub id_token_ttl: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub refresh_token_ttl: Duration,
    /// Refresh-token rotation: off (Cognito's default) means a refresh returns no new
    /// refresh token.
    pub rotate_refresh_tokens: bool,
    /// With rotation, how long the previous refresh token keeps working (0–60 s).
    #[serde(with = "humantime_serde_compat")]
    pub rotation_grace: Duration,
    /// Lifetime of the provider's own sign-in session (the `cognito` cookie).
    #[serde(with = "humantime_serde_compat")]
    pub session_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub client_id: String,
    /// None for a public client (PKCE only, no secret).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Allowed `redirect_uri` values, matched exactly.
    pub callback_urls: Vec<String>,
    /// Allowed `logout_uri` values for `/logout`, matched exactly.
    #[serde(default)]
    pub logout_urls: Vec<String>,
    #[serde(default = "default_scopes")]
    pub allowed_scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra ID-token claims such as `name` or `custom:tenant` (Cognito's are strings).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Stable subject; derived from the username when not given.
    #[serde(default)]
    pub sub: Option<String>,
    /// A user federated from this identity provider (e.g. `"Google"`): named
    /// `{provider}_{their user id there}`, as Cognito names them.
    #[serde(default)]
    pub identity_provider: Option<String>,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile", "phone", "aws.cognito.signin.user.admin"].map(String::from).to_vec()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region: "eu-west-1".into(),
            user_pool_id: "eu-west-1_Dev0Pool1".into(),
            cognito_issuer: None,
            clients: vec![],
            users: vec![
                UserSettings {
                    username: "alice".into(),
                    password: "correct horse battery staple".into(),
                    email: Some("alice@example.com".into()),
                    groups: vec!["admins".into(), "users".into()],
                    attributes: BTreeMap::from([("name".into(), "Alice Example".into())]),
                    sub: None,
                    identity_provider: None,
                },
                UserSettings {
                    username: "bob".into(),
                    password: "hunter2 hunter2".into(),
                    email: Some("bob@example.com".into()),
                    groups: vec!["users".into()],
                    attributes: BTreeMap::new(),
                    sub: None,
                    identity_provider: None,
                },
            ],
            access_token_ttl: Duration::from_secs(3600),
            id_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            rotate_refresh_tokens: false,
            rotation_grace: Duration::from_secs(60),
            session_ttl: Duration::from_secs(3600),
        }
    }
}

/// Claims the provider sets itself; a user attribute must not override them.
const RESERVED_CLAIMS: [&str; 17] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "jti",
    "nonce",
    "at_hash",
    "auth_time",
    "token_use",
    "origin_jti",
    "event_id",
    "cognito:username",
    "cognito:groups",
    "email",
    "email_verified",
    "identities",
];

impl Settings {
    /// Refuses settings that would make tokens lie about who issued them or to whom.
    pub fn validate(&self) -> Result<(), String> {
        for user in &self.users {
            if let Some(name) = user.attributes.keys().find(|name| RESERVED_CLAIMS.contains(&name.as_str())) {
                return Err(format!(
                    "user {:?}: attribute {name:?} is a claim the provider sets itself",
                    user.username
                ));
            }
        }
        if let Some(user) = self.users.iter().find(|u| u.identity_provider.is_some() && u.federation().is_none()) {
            let provider = user.identity_provider.as_deref().unwrap_or_default();
            return Err(format!(
                "user {:?}: a user federated from {provider:?} is named {provider}_{{their user id there}}, as Cognito names them",
                user.username
            ));
        }
        if self.rotation_grace > std::time::Duration::from_secs(60) {
            return Err("rotation_grace: Cognito allows 0 to 60 seconds".into());
        }
        Ok(())
    }

    /// The demo's pool: the default users and one public client for a gateway at
    /// `gateway_url` (callback `/auth/callback`, sign-out back to `/`).
    pub fn demo(gateway_url: &str) -> Self {
        let gateway_url = gateway_url.trim_end_matches('/');
        Self {
            clients: vec![ClientSettings {
                client_id: "portcullis-demo".into(),
                client_secret: None,
                callback_urls: vec![format!("{gateway_url}/auth/callback")],
                logout_urls: vec![format!("{gateway_url}/")],
                allowed_scopes: default_scopes(),
            }],
            ..Self::default()
        }
    }
}

/// Cognito's identity provider types; other names are taken to be OIDC providers.
const SOCIAL_PROVIDERS: [&str; 4] = ["Google", "Facebook", "LoginWithAmazon", "SignInWithApple"];

/// When a federated user's link was made, as `identities` dates it (milliseconds); a
/// fixed date: the link is as old as the settings.
const LINKED_AT_MS: &str = "1700000000000";

impl UserSettings {
    /// The identity provider and the user's id there, from a username
    /// `{provider}_{id}`; `None` for a user of the pool itself.
    fn federation(&self) -> Option<(&str, &str)> {
        let provider = self.identity_provider.as_deref()?;
        let id = self.username.strip_prefix(provider)?.strip_prefix('_').filter(|id| !id.is_empty())?;
        Some((provider, id))
    }

    /// `cognito:groups`: the configured groups, and for a federated user the group
    /// Cognito adds by itself, `{userPoolId}_{provider}` (AWS: "Adding groups to a user
    /// pool"; its place after the others is not checked).
    pub fn groups_in(&self, user_pool_id: &str) -> Vec<String> {
        let mut groups = self.groups.clone();
        if let Some((provider, _)) = self.federation() {
            groups.push(format!("{user_pool_id}_{provider}"));
        }
        groups
    }

    /// The ID token's `identities` claim of a federated user (AWS: "Understanding the
    /// identity (ID) token"): one linked identity, its fields strings as Cognito writes
    /// them (`primary` is `"true"`); `issuer` is null, as for social providers.
    pub fn identities(&self) -> Option<serde_json::Value> {
        let (provider, id) = self.federation()?;
        let kind = if SOCIAL_PROVIDERS.contains(&provider) { provider } else { "OIDC" };
        Some(serde_json::json!([{
            "dateCreated": LINKED_AT_MS,
            "userId": id,
            "providerName": provider,
            "providerType": kind,
            "issuer": null,
            "primary": "true",
        }]))
    }

    /// A UUID-shaped subject that stays the same for the same username.
    pub fn subject(&self) -> String {
        if let Some(sub) = &self.sub {
            return sub.clone();
        }
        use sha2::Digest;
        let h = sha2::Sha256::digest(self.username.as_bytes());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
            u16::from_be_bytes([h[4], h[5]]),
            u16::from_be_bytes([h[6], h[7]]) & 0xfff,
            u16::from_be_bytes([h[8], h[9]]) & 0xfff,
            u64::from_be_bytes([0, 0, h[10], h[11], h[12], h[13], h[14], h[15]])
        )
    }
}

/// Durations as "30s" strings in the settings file.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|err| serde::de::Error::custom(format!("{text:?}: {err}")))
    }
}
