//! Who may use a route beyond having signed in: `allowed_groups` (any one),
//! `required_scopes` (every one) and `allowed_email_domains` (a verified address in
//! one of them). The same rules apply to session and Bearer requests.
//!
//! A refusal names the rule that failed, never the user's claims or the values the
//! route wants: those would tell a prober what to aim for.

use super::identity::Identity;
use crate::config::RoutePolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Groups,
    Scopes,
    EmailDomain,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Groups => "groups",
            Rule::Scopes => "scopes",
            Rule::EmailDomain => "email_domain",
        }
    }

    pub fn public_message(self) -> &'static str {
        match self {
            Rule::Groups => "You are signed in, but not in a group allowed to use this part of the application.",
            Rule::Scopes => {
                "You are signed in, but this part of the application needs permissions you have not granted."
            }
            Rule::EmailDomain => {
                "You are signed in, but this part of the application is only for verified addresses of certain domains."
            }
        }
    }
}

/// The first rule of `policy` that `who` fails, if any.
pub fn check(policy: &RoutePolicy, who: &Identity<'_>) -> Result<(), Rule> {
    if !policy.groups.is_empty() && !who.groups.iter().any(|group| policy.groups.contains(group)) {
        return Err(Rule::Groups);
    }
    if !policy.scopes.iter().all(|wanted| who.scope.split(' ').any(|granted| granted == wanted)) {
        return Err(Rule::Scopes);
    }
    if !policy.email_domains.is_empty() && !email_allowed(&policy.email_domains, who) {
        return Err(Rule::EmailDomain);
    }
    Ok(())
}

/// The part after the last `@`, case-insensitively; an address the provider says is
/// unverified never matches (anyone can type any address at sign-up).
fn email_allowed(domains: &[String], who: &Identity<'_>) -> bool {
    let Some((_, domain)) = who.email.and_then(|email| email.rsplit_once('@')) else { return false };
    who.email_verified != Some(false) && domains.iter().any(|allowed| allowed.eq_ignore_ascii_case(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>(groups: &'a [String], scope: &'a str, email: Option<&'a str>, verified: Option<bool>) -> Identity<'a> {
        Identity {
            sub: "s",
            username: None,
            email,
            email_verified: verified,
            groups,
            scope,
            access_token: None,
            assertion_key: None,
        }
    }

    fn policy(groups: &[&str], scopes: &[&str], domains: &[&str]) -> RoutePolicy {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        RoutePolicy { groups: owned(groups), scopes: owned(scopes), email_domains: owned(domains) }
    }

    #[test]
    fn no_rules_let_everyone_in() {
        assert_eq!(check(&RoutePolicy::default(), &who(&[], "", None, None)), Ok(()));
    }

    #[test]
    fn groups_any_of() {
        let groups = ["users".to_string(), "admins".to_string()];
        let rule = policy(&["admins", "ops"], &[], &[]);
        assert_eq!(check(&rule, &who(&groups, "", None, None)), Ok(()));
        assert_eq!(check(&rule, &who(&groups[..1], "", None, None)), Err(Rule::Groups));
        assert_eq!(check(&rule, &who(&[], "", None, None)), Err(Rule::Groups));
        let case = ["ADMINS".to_string()];
        assert_eq!(check(&rule, &who(&case, "", None, None)), Err(Rule::Groups), "group names are exact");
    }

    #[test]
    fn scopes_all_of() {
        let rule = policy(&[], &["openid", "api/write"], &[]);
        assert_eq!(check(&rule, &who(&[], "openid email api/write", None, None)), Ok(()));
        assert_eq!(check(&rule, &who(&[], "openid api/writer", None, None)), Err(Rule::Scopes));
        assert_eq!(check(&rule, &who(&[], "", None, None)), Err(Rule::Scopes));
    }

    #[test]
    fn email_domains_need_a_verified_address() {
        let rule = policy(&[], &[], &["example.com"]);
        assert_eq!(check(&rule, &who(&[], "", Some("a@Example.COM"), Some(true))), Ok(()));
        assert_eq!(check(&rule, &who(&[], "", Some("a@example.com"), None)), Ok(()), "no claim: trusted");
        for (email, verified) in [
            (Some("a@example.com"), Some(false)),
            (Some("a@example.com.evil.test"), Some(true)),
            (Some("a@sub.example.com"), Some(true)),
            (Some("example.com@evil.test"), Some(true)),
            (Some("example.com"), Some(true)),
            (None, None),
        ] {
            assert_eq!(check(&rule, &who(&[], "", email, verified)), Err(Rule::EmailDomain), "{email:?}");
        }
    }
}
