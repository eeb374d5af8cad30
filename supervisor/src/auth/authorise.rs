//! The pure decision: may this peer, with this token, use the control socket, and how much?
//!
//! Rules, in order:
//! 1. The peer's uid and **primary** gid (from `SO_PEERCRED`) are looked up in the policy.
//!    `allowed_uids`/`allowed_gids` grant [`Rights::Control`], `read_only_uids`/`read_only_gids`
//!    grant [`Rights::Read`]; when several lists match, the highest right wins. Nobody is
//!    implicitly allowed, root included: the default policy lists uid 0, and a policy that
//!    removes it locks root out of the socket (root can still edit the policy).
//! 2. Supplementary groups are not consulted. The policy schema speaks of primary gids, and
//!    reading `Groups:` from `/proc/<pid>/status` races: the pid may have been reused by the
//!    time we read it, and the groups may have changed since `connect()`. If supplementary groups
//!    are ever wanted, `SO_PEERGROUPS` (snapshotted at connect time) is the race-free source.
//! 3. When `token_sha256` is non-empty, a listed peer must **also** present a token whose hash
//!    is listed (the schema's "must also present"). A token is a second factor, never a way in:
//!    it neither admits an unlisted peer nor raises read rights to control. This is what lets
//!    several clients share a uid while only the token holders among them get in.
//!    When `token_sha256` is empty, a presented token is ignored.

use super::peer::PeerCred;
use super::reason::Reason;
use super::token::{AcceptedHashes, TokenDigest, TokenError};
use serde::{Deserialize, Serialize};
use wf_policy::security_policy::AuthenticationPolicy;

/// What an authenticated peer may do. `Read < Control`; control includes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rights {
    /// Read-only verbs: list, status, logs, stats, subscribe, violations.
    Read,
    /// Every verb, including start, stop, publish, reload and shutdown.
    Control,
}

impl Rights {
    /// Whether holding `self` is enough for a verb that needs `needed`.
    pub fn covers(self, needed: Rights) -> bool {
        self >= needed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Granted { rights: Rights, reason: Reason },
    Denied(Reason),
}

/// Decides for `peer` presenting `token` (the raw token text, if any).
pub fn decide(policy: &AuthenticationPolicy, peer: &PeerCred, token: Option<&str>) -> Decision {
    let accepted = AcceptedHashes::from_policy(&policy.token_sha256);
    decide_presented(policy, &accepted, peer, token.map(TokenDigest::of_token))
}

/// [`decide`] with the token already hashed and the policy's hashes already decoded; the
/// authenticator uses this to re-check live sessions after a policy reload.
pub fn decide_presented(
    policy: &AuthenticationPolicy,
    accepted: &AcceptedHashes,
    peer: &PeerCred,
    token: Option<Result<TokenDigest, TokenError>>,
) -> Decision {
    let Some((rights, reason)) = listed_rights(policy, peer) else {
        return Decision::Denied(Reason::PeerNotListed);
    };
    if accepted.required() {
        match token {
            None => return Decision::Denied(Reason::TokenRequired),
            Some(Err(_)) => return Decision::Denied(Reason::TokenMalformed),
            Some(Ok(digest)) if !accepted.matches(&digest) => return Decision::Denied(Reason::TokenMismatch),
            Some(Ok(_)) => {}
        }
    }
    Decision::Granted { rights, reason }
}

fn listed_rights(policy: &AuthenticationPolicy, peer: &PeerCred) -> Option<(Rights, Reason)> {
    if policy.allowed_uids.contains(&peer.uid) {
        Some((Rights::Control, Reason::AllowedUid))
    } else if policy.allowed_gids.contains(&peer.gid) {
        Some((Rights::Control, Reason::AllowedGid))
    } else if policy.read_only_uids.contains(&peer.uid) {
        Some((Rights::Read, Reason::ReadOnlyUid))
    } else if policy.read_only_gids.contains(&peer.gid) {
        Some((Rights::Read, Reason::ReadOnlyGid))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const OTHER_TOKEN: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn peer(uid: u32, gid: u32) -> PeerCred {
        PeerCred { pid: 4242, uid, gid }
    }

    fn policy() -> AuthenticationPolicy {
        AuthenticationPolicy {
            allowed_uids: vec![0, 1000],
            allowed_gids: vec![500],
            read_only_uids: vec![2000],
            read_only_gids: vec![600],
            ..AuthenticationPolicy::default()
        }
    }

    fn with_token(mut policy: AuthenticationPolicy) -> AuthenticationPolicy {
        let hash = TokenDigest::of_token(TOKEN).expect("valid token").to_hex();
        policy.token_sha256 = vec![hash];
        policy
    }

    fn granted(rights: Rights, reason: Reason) -> Decision {
        Decision::Granted { rights, reason }
    }

    #[test]
    fn default_policy_admits_root_only() {
        let policy = wf_policy::default_policy().authentication;
        assert_eq!(decide(&policy, &peer(0, 0), None), granted(Rights::Control, Reason::AllowedUid));
        assert_eq!(decide(&policy, &peer(1000, 1000), None), Decision::Denied(Reason::PeerNotListed));
    }

    #[test]
    fn root_is_not_implicitly_allowed() {
        let policy = AuthenticationPolicy { allowed_uids: vec![1000], ..AuthenticationPolicy::default() };
        assert_eq!(decide(&policy, &peer(0, 0), None), Decision::Denied(Reason::PeerNotListed));
    }

    #[test]
    fn each_list_grants_its_rights() {
        let p = policy();
        assert_eq!(decide(&p, &peer(1000, 9), None), granted(Rights::Control, Reason::AllowedUid));
        assert_eq!(decide(&p, &peer(9, 500), None), granted(Rights::Control, Reason::AllowedGid));
        assert_eq!(decide(&p, &peer(2000, 9), None), granted(Rights::Read, Reason::ReadOnlyUid));
        assert_eq!(decide(&p, &peer(9, 600), None), granted(Rights::Read, Reason::ReadOnlyGid));
        assert_eq!(decide(&p, &peer(9, 9), None), Decision::Denied(Reason::PeerNotListed));
    }

    #[test]
    fn gid_lists_do_not_match_uids_and_vice_versa() {
        let p = policy();
        // uid 500 is a listed *gid*, gid 1000 a listed *uid*: neither counts.
        assert_eq!(decide(&p, &peer(500, 1000), None), Decision::Denied(Reason::PeerNotListed));
    }

    #[test]
    fn highest_matching_right_wins() {
        let p = policy();
        assert_eq!(decide(&p, &peer(2000, 500), None), granted(Rights::Control, Reason::AllowedGid));
        assert_eq!(decide(&p, &peer(1000, 600), None), granted(Rights::Control, Reason::AllowedUid));
    }

    #[test]
    fn listed_peer_needs_a_token_when_hashes_are_configured() {
        let p = with_token(policy());
        assert_eq!(decide(&p, &peer(1000, 9), None), Decision::Denied(Reason::TokenRequired));
        assert_eq!(decide(&p, &peer(1000, 9), Some(TOKEN)), granted(Rights::Control, Reason::AllowedUid));
    }

    #[test]
    fn wrong_malformed_and_short_tokens_are_denied() {
        let p = with_token(policy());
        let me = peer(1000, 9);
        assert_eq!(decide(&p, &me, Some(OTHER_TOKEN)), Decision::Denied(Reason::TokenMismatch));
        assert_eq!(decide(&p, &me, Some(&TOKEN[..32])), Decision::Denied(Reason::TokenMalformed));
        assert_eq!(decide(&p, &me, Some(&TOKEN.replace('a', "z"))), Decision::Denied(Reason::TokenMalformed));
        assert_eq!(decide(&p, &me, Some("")), Decision::Denied(Reason::TokenMalformed));
    }

    #[test]
    fn a_token_neither_admits_unlisted_peers_nor_raises_rights() {
        let p = with_token(policy());
        assert_eq!(decide(&p, &peer(9, 9), Some(TOKEN)), Decision::Denied(Reason::PeerNotListed));
        assert_eq!(decide(&p, &peer(2000, 9), Some(TOKEN)), granted(Rights::Read, Reason::ReadOnlyUid));
    }

    #[test]
    fn tokens_are_ignored_when_none_are_configured() {
        let p = policy();
        assert_eq!(decide(&p, &peer(1000, 9), Some("garbage")), granted(Rights::Control, Reason::AllowedUid));
    }

    #[test]
    fn control_covers_read_but_not_the_reverse() {
        assert!(Rights::Control.covers(Rights::Read));
        assert!(Rights::Control.covers(Rights::Control));
        assert!(Rights::Read.covers(Rights::Read));
        assert!(!Rights::Read.covers(Rights::Control));
    }
}
