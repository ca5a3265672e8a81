//! The reference manager's built-in catalogue of entitlement tags and the borrowing rules
//! between them (SPEC §4 "Manager allocation").
//!
//! - The six Unified CM tags are those of the product's own status output (seed 002:62-67).
//! - Unity Connection, Emergency Responder and HCS tags are *ours*: the seeds name the licenses
//!   (000:535-545) but not their tags, so they carry invented but fixed `regid.2017-03…` tags.
//! - The Expressway Rich Media Session tag is Expressway's.
//!
//! Rules, in the order the allocator applies them: a tag is served from its own pool, then from
//! the nearest higher tier upward ("To Lower" substitution, 004:590), then by dual parenting
//! from the mapped HCS license (000:523-545), Foundation before Standard; tags are taken from
//! the lowest tier up.

use crate::entitlement::Tag;

/// `UC Manager CUWL License (12.x)` (002:62), the highest Unified CM tier.
pub const UCM_CUWL: &str =
    "regid.2017-02.com.cisco.UCM_CUWL,12.0_cc59375a-1cd8-4b36-8366-6f4d2abba965";
/// `UC Manager Enhanced Plus License (12.x)` (002:63).
pub const UCM_ENHANCED_PLUS: &str =
    "regid.2016-07.com.cisco.UCM_EnhancedPlus,12.0_d8372792-588c-4caa-b279-8587e5ce2f82";
/// `UC Manager Enhanced License (12.x)` (002:64).
pub const UCM_ENHANCED: &str =
    "regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf-4863-4761-91d0-d01d3eb1949a";
/// `UC Manager Basic License (12.x)` (002:65).
pub const UCM_BASIC: &str =
    "regid.2016-07.com.cisco.UCM_Basic,12.0_ef827a2f-f4ae-4ebb-887f-052737063d3a";
/// `UC Manager Essential License (12.x)` (002:66), the lowest Unified CM tier.
pub const UCM_ESSENTIAL: &str =
    "regid.2016-07.com.cisco.UCM_Essential,12.0_25f9c396-c67c-4519-aa98-d4b3ad18f805";
/// `UC Manager TelePresence Room License (12.x)` (002:67); outside the user tiers.
pub const UCM_TELEPRESENCE_ROOM: &str =
    "regid.2016-07.com.cisco.UCM_TelePresenceRoom,12.0_d9a71418-29e9-4c9a-9d3a-1366ebe38e7c";
/// Unity Connection basic messaging (tag ours).
pub const CUC_BASIC_MESSAGING: &str =
    "regid.2017-03.com.cisco.CUC_BasicMessaging,12.0_bb161039-49a9-45e4-827a-40b4f7f3e8ff";
/// Unity Connection enhanced messaging (tag ours).
pub const CUC_ENHANCED_MESSAGING: &str =
    "regid.2017-03.com.cisco.CUC_EnhancedMessaging,12.0_46e118c5-1623-45b6-8f63-163321cf54a6";
/// Emergency Responder user (tag ours).
pub const CER_USER: &str =
    "regid.2017-03.com.cisco.CER_USER,12.0_cb4d3de4-8ca5-4755-9af1-ebd44bd530e0";
/// HCS Cisco UCM Foundation License (tag ours): parent of Basic, Essential and Enhanced.
pub const HCS_UCM_FOUNDATION: &str =
    "regid.2017-03.com.cisco.HCS_UCM_Foundation,12.0_b80d5033-fd20-4c63-bdfa-6ac878954c71";
/// HCS Cisco UCM Standard License (tag ours): parent of CUWL (UWL) and Enhanced Plus, and
/// after Foundation of what Foundation serves.
pub const HCS_UCM_STANDARD: &str =
    "regid.2017-03.com.cisco.HCS_UCM_Standard,12.0_9d1cc791-df4a-4bae-8c33-94c5704a74a5";
/// HCS Cisco UCM TelePresence Room License (tag ours).
pub const HCS_UCM_TELEPRESENCE_ROOM: &str =
    "regid.2017-03.com.cisco.HCS_UCM_TelePresenceRoom,12.0_4b108359-b2b0-4fbd-ad13-60d530ff9006";
/// HCS Unity Connection Basic License (tag ours).
pub const HCS_CUC_BASIC: &str =
    "regid.2017-03.com.cisco.HCS_CUC_Basic,12.0_32ec6349-9ec2-4fb4-9b6c-9a14577d3647";
/// HCS Unity Connection Standard License (tag ours).
pub const HCS_CUC_STANDARD: &str =
    "regid.2017-03.com.cisco.HCS_CUC_Standard,12.0_2bf94e29-ee62-4252-9b4b-0c433076146a";
/// HCS Emergency Responder User License (tag ours).
pub const HCS_CER_USER: &str =
    "regid.2017-03.com.cisco.HCS_CER_User,12.0_8f7ee9db-ed58-46d1-a6a7-3c8ff61ebef7";
pub use crate::entitlement::{
    EXPY_ADVANCED_ACCOUNT_SECURITY, EXPY_PLR_WITHOUT_EXPORT_CONTROL, EXPY_PLR_WITH_EXPORT_CONTROL,
};
/// Cisco Expressway Rich Media Session License.
pub const EXPY_RMS: &str =
    "regid.2018-09.com.cisco.EXPY_RMS,1.0_3585abe5-bf6a-49ed-a8d6-a17463d0e734";

/// (tag, display name, description), in catalogue order: within a tier chain the higher tiers
/// come first (the order of reports and grants). The allocator takes tags the other way round,
/// from the lowest tier up ([`allocation_rank`], SPEC §4).
const ENTRIES: [(&str, &str, &str); 19] = [
    (
        UCM_CUWL,
        "UC Manager CUWL License (12.x)",
        "UC Manager CUWL License",
    ),
    (
        UCM_ENHANCED_PLUS,
        "UC Manager Enhanced Plus License (12.x)",
        "UC Manager Enhanced Plus License",
    ),
    (
        UCM_ENHANCED,
        "UC Manager Enhanced License (12.x)",
        "UC Manager Enhanced License",
    ),
    (
        UCM_BASIC,
        "UC Manager Basic License (12.x)",
        "UC Manager Basic License",
    ),
    (
        UCM_ESSENTIAL,
        "UC Manager Essential License (12.x)",
        "UC Manager Essential License",
    ),
    (
        UCM_TELEPRESENCE_ROOM,
        "UC Manager TelePresence Room License (12.x)",
        "UC Manager TelePresence Room License",
    ),
    (
        CUC_ENHANCED_MESSAGING,
        "Unity Connection Enhanced Messaging License (12.x)",
        "Unity Connection Enhanced Messaging License",
    ),
    (
        CUC_BASIC_MESSAGING,
        "Unity Connection Basic Messaging License (12.x)",
        "Unity Connection Basic Messaging License",
    ),
    (
        CER_USER,
        "Emergency Responder User License (12.x)",
        "Emergency Responder User License",
    ),
    (
        HCS_UCM_STANDARD,
        "HCS Cisco UCM Standard License (12.x)",
        "HCS Cisco UCM Standard License",
    ),
    (
        HCS_UCM_FOUNDATION,
        "HCS Cisco UCM Foundation License (12.x)",
        "HCS Cisco UCM Foundation License",
    ),
    (
        HCS_UCM_TELEPRESENCE_ROOM,
        "HCS Cisco UCM TelePresence Room License (12.x)",
        "HCS Cisco UCM TelePresence Room License",
    ),
    (
        HCS_CUC_STANDARD,
        "HCS Unity Connection Standard License (12.x)",
        "HCS Unity Connection Standard License",
    ),
    (
        HCS_CUC_BASIC,
        "HCS Unity Connection Basic License (12.x)",
        "HCS Unity Connection Basic License",
    ),
    (
        HCS_CER_USER,
        "HCS Emergency Responder User License (12.x)",
        "HCS Emergency Responder User License",
    ),
    (
        EXPY_RMS,
        "Cisco Expressway Rich Media Session License",
        "Cisco Expressway Rich Media Session License",
    ),
    // The reservation entitlements of 004:587-589 (tags ours, in `entitlement`).
    (
        EXPY_ADVANCED_ACCOUNT_SECURITY,
        "Expressway Advanced Account Security",
        "Expressway Advanced Account Security",
    ),
    (
        EXPY_PLR_WITH_EXPORT_CONTROL,
        "Expressway PLR with Export Control",
        "Expressway PLR with Export Control",
    ),
    (
        EXPY_PLR_WITHOUT_EXPORT_CONTROL,
        "Expressway PLR without Export Control",
        "Expressway PLR without Export Control",
    ),
];

/// Tier chains, lowest first: a tag may borrow from every higher tier of its chain, nearest
/// first ("To Lower" substitution). The HCS UCM chain (Standard serves Foundation) is ours,
/// following "the higher level licences are utilized to fulfill the request for lower level
/// licenses" (000:527).
const TIERS: [&[&str]; 2] = [
    &[
        UCM_ESSENTIAL,
        UCM_BASIC,
        UCM_ENHANCED,
        UCM_ENHANCED_PLUS,
        UCM_CUWL,
    ],
    &[HCS_UCM_FOUNDATION, HCS_UCM_STANDARD],
];

/// Dual parenting (000:535-545): an enterprise tag and the HCS licenses that may serve it, in
/// order. HCS UCM Standard also serves what Foundation serves, after Foundation.
const DUAL_PARENTS: [(&str, &[&str]); 9] = [
    (UCM_BASIC, &[HCS_UCM_FOUNDATION, HCS_UCM_STANDARD]),
    (UCM_ESSENTIAL, &[HCS_UCM_FOUNDATION, HCS_UCM_STANDARD]),
    (UCM_ENHANCED, &[HCS_UCM_FOUNDATION, HCS_UCM_STANDARD]),
    (UCM_CUWL, &[HCS_UCM_STANDARD]),
    (UCM_ENHANCED_PLUS, &[HCS_UCM_STANDARD]),
    (UCM_TELEPRESENCE_ROOM, &[HCS_UCM_TELEPRESENCE_ROOM]),
    (CUC_BASIC_MESSAGING, &[HCS_CUC_BASIC]),
    (CUC_ENHANCED_MESSAGING, &[HCS_CUC_STANDARD]),
    (CER_USER, &[HCS_CER_USER]),
];

/// One tag of the built-in catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// The entitlement tag.
    pub tag: Tag,
    /// The display name the manager puts into grants, e.g. `UC Manager Enhanced License (12.x)`.
    pub display_name: &'static str,
    /// The description, e.g. `UC Manager Enhanced License`.
    pub description: &'static str,
}

/// The built-in catalogue, in catalogue order (higher tiers first; the order of grants and
/// license reports).
///
/// ```
/// use smart_agent::manager::catalogue;
/// let entries = catalogue::catalogue();
/// let enhanced = entries
///     .iter()
///     .find(|e| e.tag.as_str() == catalogue::UCM_ENHANCED)
///     .unwrap();
/// assert_eq!(enhanced.display_name, "UC Manager Enhanced License (12.x)");
/// assert_eq!(enhanced.description, "UC Manager Enhanced License");
/// ```
pub fn catalogue() -> Vec<CatalogueEntry> {
    ENTRIES
        .iter()
        .filter_map(|(tag, display_name, description)| {
            Some(CatalogueEntry {
                tag: Tag::parse(tag).ok()?,
                display_name,
                description,
            })
        })
        .collect()
}

/// The catalogue entry for `tag`, if the catalogue knows it.
pub fn lookup(tag: &str) -> Option<CatalogueEntry> {
    let (tag, display_name, description) = ENTRIES.iter().find(|(t, _, _)| *t == tag)?;
    Some(CatalogueEntry {
        tag: Tag::parse(tag).ok()?,
        display_name,
        description,
    })
}

/// Every catalogue tag, in catalogue order.
pub(crate) fn tags() -> impl Iterator<Item = &'static str> {
    ENTRIES.iter().map(|(tag, _, _)| *tag)
}

/// Position in catalogue order; tags outside the catalogue sort after it.
pub(crate) fn rank(tag: &str) -> usize {
    ENTRIES
        .iter()
        .position(|(t, _, _)| *t == tag)
        .unwrap_or(ENTRIES.len())
}

/// Position in the allocator's order (SPEC §4: "tags taken from the lowest tier up"): the
/// catalogue backwards, so that within each tier chain the lowest tier comes first; tags
/// outside the catalogue after it.
pub(crate) fn allocation_rank(tag: &str) -> usize {
    match ENTRIES.iter().position(|(t, _, _)| *t == tag) {
        Some(at) => ENTRIES.len() - 1 - at,
        None => ENTRIES.len(),
    }
}

/// The higher tiers that may serve `tag` by substitution, nearest first.
pub(crate) fn substitutes(tag: &str) -> &'static [&'static str] {
    TIERS
        .iter()
        .find_map(|chain| {
            let at = chain.iter().position(|t| *t == tag)?;
            chain.get(at + 1..)
        })
        .unwrap_or(&[])
}

/// The HCS licenses that may serve `tag` by dual parenting, in order.
pub(crate) fn dual_parents(tag: &str) -> &'static [&'static str] {
    DUAL_PARENTS
        .iter()
        .find(|(child, _)| *child == tag)
        .map(|(_, parents)| *parents)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_tag_parses_and_is_unique() {
        assert_eq!(catalogue().len(), ENTRIES.len());
        let mut seen = std::collections::BTreeSet::new();
        for e in catalogue() {
            assert!(seen.insert(e.tag.name().to_string()), "{}", e.tag);
            assert_eq!(lookup(e.tag.as_str()), Some(e.clone()));
        }
        for chain in TIERS {
            assert!(chain.iter().all(|t| lookup(t).is_some()));
        }
        for (child, parents) in DUAL_PARENTS {
            assert!(lookup(child).is_some());
            assert!(parents.iter().all(|t| lookup(t).is_some()));
        }
    }

    #[test]
    fn unified_cm_display_names_follow_the_seed() {
        assert_eq!(
            lookup(UCM_CUWL).unwrap().display_name,
            "UC Manager CUWL License (12.x)"
        );
        assert_eq!(
            lookup(UCM_BASIC).unwrap().description,
            "UC Manager Basic License"
        );
        assert_eq!(
            lookup(EXPY_RMS).unwrap().display_name,
            "Cisco Expressway Rich Media Session License"
        );
        assert_eq!(lookup("regid.2016-07.com.cisco.X,1.0_x"), None);
    }

    #[test]
    fn substitution_goes_up_the_tiers_nearest_first() {
        assert_eq!(
            substitutes(UCM_ESSENTIAL),
            &[UCM_BASIC, UCM_ENHANCED, UCM_ENHANCED_PLUS, UCM_CUWL]
        );
        assert_eq!(substitutes(UCM_ENHANCED), &[UCM_ENHANCED_PLUS, UCM_CUWL]);
        assert!(substitutes(UCM_CUWL).is_empty());
        assert!(substitutes(UCM_TELEPRESENCE_ROOM).is_empty());
        assert_eq!(substitutes(HCS_UCM_FOUNDATION), &[HCS_UCM_STANDARD]);
    }

    #[test]
    fn dual_parenting_prefers_foundation_to_standard() {
        assert_eq!(
            dual_parents(UCM_BASIC),
            &[HCS_UCM_FOUNDATION, HCS_UCM_STANDARD]
        );
        assert_eq!(dual_parents(UCM_ENHANCED_PLUS), &[HCS_UCM_STANDARD]);
        assert_eq!(dual_parents(CER_USER), &[HCS_CER_USER]);
        assert!(dual_parents(EXPY_RMS).is_empty());
    }

    #[test]
    fn higher_tiers_come_first_in_catalogue_order() {
        assert!(rank(UCM_CUWL) < rank(UCM_ENHANCED));
        assert!(rank(UCM_ENHANCED) < rank(UCM_ESSENTIAL));
        assert_eq!(rank("unknown"), ENTRIES.len());
    }

    #[test]
    fn the_allocator_takes_the_lowest_tier_first() {
        for chain in TIERS {
            for pair in chain.windows(2) {
                assert!(
                    allocation_rank(pair[0]) < allocation_rank(pair[1]),
                    "{pair:?}"
                );
            }
        }
        assert_eq!(allocation_rank("unknown"), ENTRIES.len());
    }
}
