use super::*;

/// Whether the kernel has Landlock, judged independently of `landlock_abi`: creating
/// a real ruleset through the crate only succeeds with Landlock enabled.
fn kernel_has_landlock() -> bool {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::Execute)
        .and_then(|r| r.create())
        .is_ok()
}

#[test]
fn abi_is_reported_when_the_kernel_has_landlock() {
    let abi = landlock_abi();
    assert_eq!(abi.is_some(), kernel_has_landlock(), "abi {abi:?}");
    if let Some(v) = abi {
        assert!(v >= 1);
        assert_eq!(best_abi(abi) as i32, v.min(best_abi(Some(i32::MAX)) as i32));
    }
    assert_eq!(best_abi(None), ABI::Unsupported);
}

#[test]
fn access_classes_map_to_rights() {
    let abi = ABI::V5;
    let read = access_rights(Access::Read, abi, true);
    assert_eq!(read, AccessFs::ReadFile | AccessFs::ReadDir);
    let rx = access_rights(Access::ReadExec, abi, true);
    assert_eq!(rx, read | AccessFs::Execute);
    let rw = access_rights(Access::ReadWrite, abi, true);
    assert!(!rw.contains(AccessFs::Execute), "ReadWrite must never include Execute");
    assert_eq!(rw, AccessFs::from_all(abi) & !AccessFs::Execute);
    assert!(rw.contains(AccessFs::Refer | AccessFs::Truncate | AccessFs::IoctlDev | AccessFs::MakeReg));
}

#[test]
fn rules_on_files_carry_only_file_rights() {
    for abi in [ABI::V1, ABI::V3, ABI::V5, ABI::V7] {
        for access in [Access::Read, Access::ReadExec, Access::ReadWrite] {
            let rights = access_rights(access, abi, false);
            assert!(AccessFs::from_file(abi).contains(rights), "{access:?} {abi:?}: {rights:?}");
            assert!(!rights.contains(AccessFs::ReadDir));
            assert!(!rights.contains(AccessFs::Execute) || access == Access::ReadExec);
        }
    }
    assert_eq!(access_rights(Access::Read, ABI::V5, false), AccessFs::ReadFile);
}

#[test]
fn rights_never_exceed_the_abi() {
    for access in [Access::Read, Access::ReadExec, Access::ReadWrite] {
        let v1 = access_rights(access, ABI::V1, true);
        assert!(AccessFs::from_all(ABI::V1).contains(v1));
        assert!(!v1.contains(AccessFs::Refer) && !v1.contains(AccessFs::Truncate));
    }
}

#[test]
fn report_names_every_handled_right() {
    if !kernel_has_landlock() {
        eprintln!("SKIPPED (no Landlock in this kernel): report_names_every_handled_right");
        return;
    }
    let (_ruleset, report) = build_ruleset(&[], true, true).expect("ruleset");
    let abi = best_abi(landlock_abi());
    assert_eq!(report.handled_fs, AccessFs::from_all(abi));
    assert_eq!(report.scoped, abi as i32 >= SCOPES_MIN_ABI);
    assert!(report.require_full);
    let names = report.handled_fs_names();
    assert_eq!(names.len(), report.handled_fs.iter().count());
    assert!(names.contains(&"execute") && names.contains(&"read_file") && !names.contains(&"other"));
    let (_r, unscoped) = build_ruleset(&[], false, true).expect("ruleset");
    assert!(!unscoped.scoped);
}
