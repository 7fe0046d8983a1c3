//! Storage behaviour, run against SQLite and PostgreSQL alike.

use tollgate_common::{KeyId, OrgId};

use super::testing::on_both_databases;
use super::*;
use crate::roles::Role;
use crate::secrets::generate_key;

fn new_key(name: &str) -> NewKey {
    let generated = generate_key();
    NewKey {
        name: name.into(),
        key_hash: generated.hash,
        display_prefix: generated.display_prefix,
        allowed_models: vec!["gpt-4o*".into()],
        budget_usd: Some("12.50".parse().unwrap()),
        budget_period: Some("monthly".into()),
        tags: [("feature".to_string(), "search".to_string())].into(),
        ..NewKey::default()
    }
}

async fn signup(store: &AuthStore, email: &str, org: &str) -> (SignupRecords, KeyRecord) {
    store
        .signup(email, "$argon2id$fake", org, new_key("default"))
        .await
        .unwrap()
}

on_both_databases!(
    signup_creates_the_whole_tenant,
    |store: AuthStore| async move {
        let (records, key) = signup(&store, "Owner@Example.com", "Acme").await;
        assert_eq!(records.organization.name, "Acme");
        assert_eq!(records.team.name, "default");
        assert_eq!(key.org_id, records.organization.id);
        assert_eq!(key.team_id, records.team.id);
        assert_eq!(key.created_by, Some(records.user.id));
        assert_eq!(key.budget_usd.unwrap().to_string(), "12.50");
        let org = records.organization.id;
        assert_eq!(
            store.org_role(org, records.user.id).await.unwrap(),
            Some(Role::Owner)
        );
        assert_eq!(
            store
                .team_role(org, records.team.id, records.user.id)
                .await
                .unwrap(),
            Some(Role::Admin)
        );
        // email uniqueness ignores case and blanks
        let again = store
            .signup(" owner@EXAMPLE.com ", "x", "Other", new_key("k"))
            .await;
        assert!(matches!(again, Err(StoreError::Duplicate(_))), "{again:?}");
        // and the failed sign-up left nothing behind
        assert_eq!(store.all_organizations().await.unwrap().len(), 1);
        let (user, _) = store
            .credentials("OWNER@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user, records.user.id);
        // every change was audited
        let actions: Vec<String> = store
            .audit_log(org, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        for action in [
            "organization.create",
            "team.create",
            "member.add",
            "team_member.add",
            "key.create",
        ] {
            assert!(
                actions.iter().any(|a| a == action),
                "{action} missing from {actions:?}"
            );
        }
    }
);

on_both_databases!(
    no_accessor_reads_across_organizations,
    |store: AuthStore| async move {
        let (a, key_a) = signup(&store, "a@example.com", "A").await;
        let (b, _) = signup(&store, "b@example.com", "B").await;
        let (org_a, org_b) = (a.organization.id, b.organization.id);
        assert!(store.key(org_b, key_a.id).await.unwrap().is_none());
        assert!(store.team(org_b, a.team.id).await.unwrap().is_none());
        assert!(store.member(org_b, a.user.id).await.unwrap().is_none());
        assert!(store.org_role(org_b, a.user.id).await.unwrap().is_none());
        assert!(
            store
                .team_role(org_b, a.team.id, a.user.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .keys(org_b, None)
                .await
                .unwrap()
                .iter()
                .all(|k| k.org_id == org_b)
        );
        assert!(store.keys(org_b, Some(a.team.id)).await.unwrap().is_empty());
        assert!(
            store
                .members(org_b)
                .await
                .unwrap()
                .iter()
                .all(|m| m.user_id != a.user.id)
        );
        assert!(
            store
                .team_members(org_b, a.team.id)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .audit_log(org_b, 100)
                .await
                .unwrap()
                .iter()
                .all(|r| r.org_id == org_b)
        );
        // and no write reaches across either
        assert!(
            store
                .update_key(
                    org_b,
                    key_a.id,
                    KeyChanges {
                        name: Some("x".into()),
                        ..Default::default()
                    },
                    "t"
                )
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .revoke_key(org_b, key_a.id, "t")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .rotate_key(org_b, key_a.id, "h".into(), "p".into(), 0, "t")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .rename_team(org_b, a.team.id, "x", "t")
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.delete_team(org_b, a.team.id, "t").await.unwrap());
        assert!(
            store
                .set_member_role(org_b, a.user.id, Role::Viewer, "t")
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.remove_member(org_b, a.user.id, "t").await.unwrap());
        assert!(
            !store
                .remove_team_member(org_b, a.team.id, a.user.id, "t")
                .await
                .unwrap()
        );
        let untouched = store.key(org_a, key_a.id).await.unwrap().unwrap();
        assert_eq!(untouched, key_a);
        assert_eq!(
            store.org_role(org_a, a.user.id).await.unwrap(),
            Some(Role::Owner)
        );
    }
);

on_both_databases!(
    keys_update_revoke_and_rotate,
    |store: AuthStore| async move {
        let (a, key) = signup(&store, "k@example.com", "K").await;
        let org = a.organization.id;
        assert_eq!(
            store.key_by_hash(&key.key_hash).await.unwrap().unwrap().id,
            key.id
        );

        let changes = KeyChanges {
            name: Some("renamed".into()),
            rpm_limit: Some(Some(60)),
            budget_usd: Some(None),
            disabled: Some(true),
            ..Default::default()
        };
        let updated = store
            .update_key(org, key.id, changes, "t")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                updated.name.as_str(),
                updated.rpm_limit,
                updated.budget_usd,
                updated.disabled
            ),
            ("renamed", Some(60), None, true)
        );
        assert_eq!(updated.status(now_ms()), KeyStatus::Disabled);
        assert_eq!(store.key(org, key.id).await.unwrap().unwrap(), updated);
        let enabled = store
            .update_key(
                org,
                key.id,
                KeyChanges {
                    disabled: Some(false),
                    ..Default::default()
                },
                "t",
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(enabled.status(now_ms()), KeyStatus::Active);

        let replacement = generate_key();
        let grace_end = now_ms() + 60_000;
        let (old, new) = store
            .rotate_key(
                org,
                key.id,
                replacement.hash.clone(),
                replacement.display_prefix,
                grace_end,
                "t",
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.rotated_to, Some(new.id));
        assert_eq!(old.expires_at, Some(grace_end));
        assert_eq!(old.status(now_ms()), KeyStatus::Rotating);
        assert_eq!(old.status(grace_end), KeyStatus::Expired);
        assert_eq!(
            (new.name.as_str(), new.rpm_limit, new.team_id),
            ("renamed", Some(60), key.team_id)
        );
        assert_eq!(
            store
                .key_by_hash(&replacement.hash)
                .await
                .unwrap()
                .unwrap()
                .id,
            new.id
        );

        let revoked = store.revoke_key(org, new.id, "t").await.unwrap().unwrap();
        assert_eq!(revoked.status(now_ms()), KeyStatus::Revoked);
        let again = store.revoke_key(org, new.id, "t").await.unwrap().unwrap();
        assert_eq!(again.revoked_at, revoked.revoked_at);

        store
            .touch_keys(&[(key.id, 1234), (new.id, 99)])
            .await
            .unwrap();
        store.touch_keys(&[(key.id, 1000)]).await.unwrap();
        assert_eq!(
            store.key(org, key.id).await.unwrap().unwrap().last_used_at,
            Some(1234)
        );
        assert!(store.key(org, KeyId::generate()).await.unwrap().is_none());
    }
);

on_both_databases!(
    refresh_tokens_rotate_and_replays_revoke_the_family,
    |store: AuthStore| async move {
        let (a, _) = signup(&store, "r@example.com", "R").await;
        let first = store
            .insert_refresh_token("h1", a.user.id, a.organization.id, 60_000, 3_600_000)
            .await
            .unwrap();
        assert!(store.refresh_family_active(&first.family_id).await.unwrap());
        let RefreshOutcome::Rotated(second) = store
            .rotate_refresh_token("h1", "h2", 60_000)
            .await
            .unwrap()
        else {
            panic!("first use must rotate");
        };
        assert_eq!(second.family_id, first.family_id);
        // replaying the spent token revokes everything in the family, including h2
        assert!(matches!(
            store
                .rotate_refresh_token("h1", "h3", 60_000)
                .await
                .unwrap(),
            RefreshOutcome::Reused
        ));
        assert!(matches!(
            store
                .rotate_refresh_token("h2", "h4", 60_000)
                .await
                .unwrap(),
            RefreshOutcome::Invalid
        ));
        assert!(!store.refresh_family_active(&first.family_id).await.unwrap());
        assert!(matches!(
            store
                .rotate_refresh_token("nope", "h5", 60_000)
                .await
                .unwrap(),
            RefreshOutcome::Invalid
        ));

        // logout ends a session
        store
            .insert_refresh_token("l1", a.user.id, a.organization.id, 60_000, 3_600_000)
            .await
            .unwrap();
        assert!(store.revoke_refresh_family("l1").await.unwrap());
        assert!(matches!(
            store
                .rotate_refresh_token("l1", "l2", 60_000)
                .await
                .unwrap(),
            RefreshOutcome::Invalid
        ));
        // and expired tokens do not refresh
        store
            .insert_refresh_token("e1", a.user.id, a.organization.id, -1, 3_600_000)
            .await
            .unwrap();
        assert!(matches!(
            store
                .rotate_refresh_token("e1", "e2", 60_000)
                .await
                .unwrap(),
            RefreshOutcome::Invalid
        ));
    }
);

on_both_databases!(
    teams_members_and_literal_names,
    |store: AuthStore| async move {
        let (a, _) = signup(&store, "t@example.com", "T").await;
        let org = a.organization.id;
        let hostile = "x'); DROP TABLE teams; --";
        let team = store.create_team(org, hostile, "t").await.unwrap();
        assert_eq!(
            store.team(org, team.id).await.unwrap().unwrap().name,
            hostile
        );
        assert!(matches!(
            store.create_team(org, hostile, "t").await,
            Err(StoreError::Duplicate(_))
        ));
        store
            .set_team_member(org, team.id, a.user.id, Role::Viewer, "t")
            .await
            .unwrap();
        store
            .set_team_member(org, team.id, a.user.id, Role::Member, "t")
            .await
            .unwrap();
        assert_eq!(
            store.team_role(org, team.id, a.user.id).await.unwrap(),
            Some(Role::Member)
        );
        assert_eq!(store.team_members(org, team.id).await.unwrap().len(), 1);
        // a team with keys cannot be deleted; an empty one can
        store
            .create_key(org, team.id, None, new_key("k"), "t")
            .await
            .unwrap();
        assert!(matches!(
            store.delete_team(org, team.id, "t").await,
            Err(StoreError::Duplicate(_))
        ));
        let empty = store.create_team(org, "empty", "t").await.unwrap();
        assert!(store.delete_team(org, empty.id, "t").await.unwrap());
        assert_eq!(store.teams(org).await.unwrap().len(), 2);
        assert_eq!(store.owner_count(org).await.unwrap(), 1);
        let renamed = store
            .rename_team(org, team.id, "search", "cli")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renamed.name, "search");
        let entry = &store.audit_log(org, 1).await.unwrap()[0];
        assert_eq!(
            (entry.action.as_str(), entry.actor.as_str()),
            ("team.update", "cli")
        );
        assert_eq!(entry.before.as_ref().unwrap()["name"], hostile);
        assert_eq!(entry.after.as_ref().unwrap()["name"], "search");
        let _ = OrgId::generate();
    }
);

on_both_databases!(
    rotation_never_extends_a_session_past_its_end,
    |store: AuthStore| async move {
        let (a, _) = signup(&store, "s@example.com", "S").await;
        // A token valid for an hour, in a session that ends in 300 ms.
        let first = store
            .insert_refresh_token("s1", a.user.id, a.organization.id, 3_600_000, 300)
            .await
            .unwrap();
        assert_eq!(first.expires_at, first.session_expires_at);
        let RefreshOutcome::Rotated(second) = store
            .rotate_refresh_token("s1", "s2", 3_600_000)
            .await
            .unwrap()
        else {
            panic!("a live session rotates");
        };
        assert_eq!(second.session_expires_at, first.session_expires_at);
        assert!(second.expires_at <= first.session_expires_at);
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        assert!(matches!(
            store
                .rotate_refresh_token("s2", "s3", 3_600_000)
                .await
                .unwrap(),
            RefreshOutcome::Invalid
        ));
        assert!(!store.refresh_family_active(&first.family_id).await.unwrap());
    }
);

on_both_databases!(
    a_password_change_ends_the_other_sessions_in_every_organization,
    |store: AuthStore| async move {
        let (a, _) = signup(&store, "p@example.com", "P").await;
        let (b, _) = signup(&store, "q@example.com", "Q").await;
        store
            .add_member(b.organization.id, a.user.id, Role::Member, "test")
            .await
            .unwrap();
        let keep = store
            .insert_refresh_token("k1", a.user.id, a.organization.id, 60_000, 60_000)
            .await
            .unwrap();
        let other = store
            .insert_refresh_token("o1", a.user.id, b.organization.id, 60_000, 60_000)
            .await
            .unwrap();
        let someone_else = store
            .insert_refresh_token("x1", b.user.id, b.organization.id, 60_000, 60_000)
            .await
            .unwrap();
        let ended = store
            .change_password(a.user.id, "$argon2id$new", &keep.family_id)
            .await
            .unwrap();
        assert_eq!(ended, 1);
        assert!(store.refresh_family_active(&keep.family_id).await.unwrap());
        assert!(!store.refresh_family_active(&other.family_id).await.unwrap());
        assert!(
            store
                .refresh_family_active(&someone_else.family_id)
                .await
                .unwrap()
        );
        assert_eq!(
            store.user_credentials(a.user.id).await.unwrap().unwrap().1,
            "$argon2id$new"
        );
        for org in [a.organization.id, b.organization.id] {
            let entry = &store.audit_log(org, 1).await.unwrap()[0];
            assert_eq!(entry.action, "user.password_change");
            assert_eq!(entry.target_id, a.user.id.to_string());
        }
    }
);

on_both_databases!(
    pending_signups_are_taken_once_and_never_for_a_known_address,
    |store: AuthStore| async move {
        signup(&store, "Known@example.com", "K").await;
        let pending =
            |token_hash: &'static str, email: &'static str, ttl_ms: i64| NewPendingSignup {
                token_hash,
                email,
                password_hash: "$argon2id$pending",
                organization: "New Co",
                ttl_ms,
            };
        assert_eq!(
            store
                .add_pending_signup(pending("t0", " known@EXAMPLE.com", 60_000))
                .await
                .unwrap(),
            PendingSignupOutcome::AccountExists
        );
        assert!(store.take_pending_signup("t0").await.unwrap().is_none());
        assert_eq!(
            store
                .add_pending_signup(pending("t1", "new@example.com", 60_000))
                .await
                .unwrap(),
            PendingSignupOutcome::Pending
        );
        let taken = store.take_pending_signup("t1").await.unwrap().unwrap();
        assert_eq!(
            (taken.email.as_str(), taken.organization.as_str()),
            ("new@example.com", "New Co")
        );
        assert!(store.take_pending_signup("t1").await.unwrap().is_none());
        store
            .add_pending_signup(pending("t2", "late@example.com", -1))
            .await
            .unwrap();
        assert!(store.take_pending_signup("t2").await.unwrap().is_none());
    }
);

on_both_databases!(
    generated_signing_key_is_shared,
    |store: AuthStore| async move {
        let first = store
            .signing_keys_or_create("generated-1", "secret-a")
            .await
            .unwrap();
        let second = store
            .signing_keys_or_create("generated-1", "secret-b")
            .await
            .unwrap();
        assert_eq!(
            first,
            vec![("generated-1".to_string(), "secret-a".to_string())]
        );
        assert_eq!(first, second);
    }
);

on_both_databases!(migrations_are_idempotent, |store: AuthStore| async move {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
});

on_both_databases!(
    team_and_organization_limits,
    |store: AuthStore| async move {
        let (a, key) = signup(&store, "l@example.com", "L").await;
        let (b, _) = signup(&store, "m@example.com", "M").await;
        let org = a.organization.id;
        assert_eq!(
            store.team_limits(org, a.team.id).await.unwrap(),
            Some(TeamLimits::default())
        );
        assert_eq!(
            store.org_limits(org).await.unwrap(),
            Some(RatePair::default())
        );
        let limits = TeamLimits {
            rpm: Some(100),
            tpm: None,
            models: [(
                "gpt-4o".to_string(),
                RatePair {
                    rpm: Some(5),
                    tpm: Some(1000),
                },
            )]
            .into(),
        };
        let stale = store
            .set_team_limits(org, a.team.id, &limits, "t")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stale, vec![key.key_hash.clone()]);
        assert_eq!(
            store.team_limits(org, a.team.id).await.unwrap(),
            Some(limits.clone())
        );
        let defaults = RatePair {
            rpm: Some(60),
            tpm: Some(5000),
        };
        assert_eq!(
            store
                .set_org_limits(org, &defaults, "t")
                .await
                .unwrap()
                .unwrap()
                .len(),
            1
        );
        let verified = store.verified_key(&key.key_hash).await.unwrap().unwrap();
        assert_eq!((verified.team, verified.org), (limits, defaults));
        // another organization neither reads nor writes them
        let other = b.organization.id;
        assert_eq!(store.team_limits(other, a.team.id).await.unwrap(), None);
        assert!(
            store
                .set_team_limits(other, a.team.id, &TeamLimits::default(), "t")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store
                .team_limits(org, a.team.id)
                .await
                .unwrap()
                .unwrap()
                .rpm,
            Some(100)
        );
        assert_eq!(
            store.org_limits(other).await.unwrap(),
            Some(RatePair::default())
        );
    }
);
