//! One test per detection rule and priority level. Each also shows that the
//! message depends on its rule: with that list emptied in a copy of
//! `mappings/tasks.toml`, the same message is no longer classified the same way.

use super::*;

fn rules() -> TaskRules {
    TaskRules::builtin()
}

/// The built-in rules with one list emptied.
fn without(section: &str, key: &str) -> TaskRules {
    let mut t: toml::Table = toml::from_str(DEFAULT_RULES).unwrap();
    let s = t.get_mut(section).unwrap().as_table_mut().unwrap();
    assert!(s.contains_key(key), "{section}.{key} exists");
    s.insert(key.into(), toml::Value::Array(Vec::new()));
    TaskRules::from_toml(&toml::to_string(&t).unwrap()).unwrap()
}

#[test]
fn request_phrase_anywhere_makes_a_request() {
    for m in [
        "Bay 3 drain is leaking again, anyone able to pop up",
        "bay 2 bed 4 needs a new cannula for the 6pm abx",
        "Bed 9 obs overdue, pls",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Routine), "{m}");
        assert_eq!(without("request", "phrases").request(m), None, "{m}");
    }
}

#[test]
fn imperative_at_the_start_of_a_clause_makes_a_request() {
    for m in [
        "Prescribe his TTOs for the morning",
        "@hana recheck the potassium on bed 14",
        "Hi team, chase the CT head report for side room 2",
        "K+ 5.9 on the gas; repeat on a lab sample",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Routine), "{m}");
        assert_eq!(without("request", "imperatives").request(m), None, "{m}");
    }
    // A verb later in the sentence is not an instruction.
    assert_eq!(
        rules().request("The reg will review him after clinic"),
        None
    );
}

#[test]
fn a_modal_followed_by_an_imperative_makes_a_request() {
    for m in [
        "could the reg come and have a look at bed 3",
        "Can pharmacy check the vanc level timing",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Routine), "{m}");
        assert_eq!(without("request", "modals").request(m), None, "{m}");
    }
    // Too far from the modal, or no imperative at all: not a request.
    assert_eq!(
        rules().request("Can the family of the man in bed 3 visit"),
        None
    );
}

#[test]
fn information_and_acknowledgements_are_not_requests() {
    for m in [
        "Thanks, that's really helpful",
        "No need for another gas, lactate has cleared",
        "Seen, plan is oral abx and home tomorrow",
        "Bloods back: Hb 98, CRP coming down",
    ] {
        assert_eq!(rules().request(m), None, "{m}");
    }
    // The veto is what keeps these out: without it the request words win.
    let loose = without("not_request", "phrases");
    assert!(
        loose
            .request("No need for another gas, lactate has cleared")
            .is_some()
    );
    assert!(
        loose
            .request("Reviewed him, no need to call the reg")
            .is_some()
    );
    assert_eq!(
        rules().request("Reviewed him, no need to call the reg"),
        None
    );
}

#[test]
fn a_request_in_a_later_clause_still_counts() {
    let m = "Thanks for sorting the fluids - could you also chase the echo";
    assert_eq!(rules().request(m), Some(Priority::Routine));
    assert_eq!(
        rules().request("Thanks for sorting the fluids, lovely work"),
        None
    );
}

#[test]
fn stat_for_emergency_calls() {
    for m in [
        "2222 called for side room 1, need the reg",
        "trauma call resus 1, trauma team please",
        "peri-arrest side room 3 - now",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Stat), "{m}");
        assert_ne!(
            without("priority", "stat").request(m),
            Some(Priority::Stat),
            "{m}"
        );
    }
}

#[test]
fn a_time_or_a_decimal_does_not_end_a_question() {
    for m in [
        "can porters be booked for 10:45? ext 6120",
        "should we give the 2.5mg dose?",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Routine), "{m}");
    }
    // A colon or dot that is not between two digits still ends the clause.
    assert_eq!(
        rules().request("can porters be booked for 10: 45? ext"),
        None
    );
    assert_eq!(rules().request("can porters be booked at 10.x? ok"), None);
    assert_eq!(rules().request("can porters be booked :45? ok"), None);
}

#[test]
fn a_red_flag_observation_makes_a_request_urgent() {
    for m in [
        "bed 4 on NIV, sats 84%, can someone come and help refit pls",
        "can a reg speak to him, SpO2 87 RA",
        "please review, RR 32 on 2L",
        "can someone see bay 3, BP 78/40 after furosemide",
        "could the dr review, HR 142 irregular",
        "pls review bed 2, temp 34.6",
        "please review, RR 7",
        // The number may be the second word after the name.
        "pls review, sats RA 88",
        "please see him, resp rate 32",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Urgent), "{m}");
        assert_eq!(
            without("priority", "vitals").request(m),
            Some(Priority::Routine),
            "{m}"
        );
    }
    // In range, a target, or no number near the name: no red flag.
    for m in [
        "can someone check bed 4, sats 94% RA",
        "could a dr prescribe target sats 88-92%",
        "could a dr prescribe target sats 88 - 92%",
        "please aim sats 88 to 92 on the chart",
        "please review, RR 24, HR 130, BP 91/60",
        "can we recheck the BP and sats later please, 80 year old",
        "pls review bed 2, temp 35.1",
        // The value is read in the name's own clause.
        "please chase the BP, 80 yo on the ward",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Routine), "{m}");
    }
    // With a call for now it is stat.
    assert_eq!(
        rules().request("BP 70 systolic, please come now"),
        Some(Priority::Stat)
    );
}

#[test]
fn a_blood_result_far_out_of_range_makes_a_request_urgent() {
    for m in [
        "K+ 6.2 on the gas, can someone repeat a lab sample",
        "pls recheck, potassium 2.8",
        "can someone review, Na 119",
        "could we get a dr, sodium 158",
        "Hb 64, can someone consent for transfusion",
        "BM 2.9 after glucogel, can someone review",
        "INR was 7.9 on warfarin, pls hold tonight's dose",
        "lactate 5.1, can the reg review",
        // The value may be the second word after the name, behind a link.
        "please review, INR now 6",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Urgent), "{m}");
        assert_eq!(
            without("priority", "vitals").request(m),
            Some(Priority::Routine),
            "{m}"
        );
    }
    for m in [
        // In range (the limits themselves are in range).
        "K 5.9, can someone repeat U&E tomorrow",
        "K 3.0, can someone repeat U&E tomorrow",
        "Na 125, can someone repeat U&E tomorrow",
        "Na 155, can someone repeat U&E tomorrow",
        "Hb 70, can someone group and save",
        "BM 4.0, can someone recheck at tea",
        "INR 5, can someone dose warfarin",
        "lactate 4, can someone repeat the gas",
        // Not a value of the test: a dose after "vitamin K", a time or a
        // number of the next clause after a name without a link word.
        "please give vit K 10 mg IV",
        "pls recheck INR at 18:00",
        "bloods pls - FBC, lactate, cultures. 999 315 8097",
        "needs K recheck 2200",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Routine), "{m}");
    }
}

#[test]
fn a_patient_about_to_self_discharge_needs_an_urgent_review() {
    for m in [
        "bed 6 wants to self discharge, can a senior talk to him",
        "she's self-discharging, can someone do a capacity assessment",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Urgent), "{m}");
        assert_eq!(
            without("priority", "urgent").request(m),
            Some(Priority::Routine),
            "{m}"
        );
    }
}

#[test]
fn an_emphasised_call_for_now_is_stat() {
    for m in [
        "need consultant anaesthetist NOW, front of neck kit",
        "CT angio NOW pls, ?AAA",
        "bed 3 fitting >5 min!! need doc now",
        "please come IMMEDIATELY to bed 7",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Stat), "{m}");
        assert_eq!(
            without("priority", "immediate").request(m),
            Some(Priority::Routine),
            "{m}"
        );
    }
    // The mark of emphasis comes from the list.
    let m = "bed 3 fitting >5 min!! need doc now";
    assert_eq!(
        without("priority", "emphasis").request(m),
        Some(Priority::Asap)
    );
    // Not shouted: lower or mixed case, "NOW-ish", capitals elsewhere, one mark.
    assert_eq!(
        rules().request("need someone in NOW-ish pls"),
        Some(Priority::Routine)
    );
    for m in [
        "Now please, bed 7",
        "need the ECG now pls, bed 4 BP OK",
        "can you come now! bed 4",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Asap), "{m}");
    }
}

#[test]
fn a_call_for_now_is_asap_and_stat_only_with_deterioration() {
    for m in [
        "Need someone in bay 4 right now, he's gone grey",
        "please come immediately to bed 7",
        "restart it now please",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Asap), "{m}");
        assert_eq!(
            without("priority", "immediate").request(m),
            Some(Priority::Routine),
            "{m}"
        );
    }
    let m = "please come now, sepsis screen positive";
    assert_eq!(rules().request(m), Some(Priority::Stat));
    assert_eq!(
        without("priority", "immediate").request(m),
        Some(Priority::Urgent)
    );
    assert_eq!(
        without("priority", "urgent").request(m),
        Some(Priority::Asap)
    );
    // A score at the urgent level is a sign of deterioration too.
    assert_eq!(
        rules().request("NEWS2 5, can the reg come now"),
        Some(Priority::Stat)
    );
}

#[test]
fn an_early_warning_score_makes_a_request_urgent_or_asap() {
    for (m, p) in [
        (
            "can someone review bed 3, NEWS2 went from 3 to 7",
            Priority::Asap,
        ),
        ("can someone review bed 3, NEWS2 6 -> 8", Priority::Asap),
        ("can someone review bed 3, NEWS2 6", Priority::Urgent),
        ("can someone review bed 3, news 5", Priority::Urgent),
        ("can someone review bed 3, NEWS2 4", Priority::Routine),
        // Not a score: beyond 20, or further than five words on.
        ("can someone review bed 3, news 300", Priority::Routine),
        (
            "can someone review bed 3, NEWS2 3 and then later on 7",
            Priority::Routine,
        ),
    ] {
        assert_eq!(rules().request(m), Some(p), "{m}");
    }
    let m = "can someone review bed 3, NEWS2 7";
    assert_eq!(
        without("priority", "scores").request(m),
        Some(Priority::Routine)
    );
}

#[test]
fn asap_for_as_soon_as_possible() {
    for m in [
        "Can someone do her warfarin ASAP, INR is 4.8",
        "Could you see bed 3 as soon as you can please",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Asap), "{m}");
        assert_ne!(
            without("priority", "asap").request(m),
            Some(Priority::Asap),
            "{m}"
        );
    }
}

#[test]
fn urgent_for_urgent_words_and_deterioration() {
    for m in [
        "please review 943 476 5919 urgently",
        "Can someone look at bed 6, sats dropping on 2L",
        "bed 11 is hypotensive 84/50, can someone come",
    ] {
        assert_eq!(rules().request(m), Some(Priority::Urgent), "{m}");
        assert_eq!(
            without("priority", "urgent").request(m),
            Some(Priority::Routine),
            "{m}"
        );
    }
}

#[test]
fn routine_otherwise() {
    assert_eq!(
        rules().request("Could someone rewrite the drug chart for bed 2 today"),
        Some(Priority::Routine)
    );
    // "now" in information does not make a request at all.
    assert_eq!(rules().request("Bloods now back, all normal"), None);
}

#[test]
fn lifecycle_phrases_move_a_task_in_a_fixed_order() {
    let r = rules();
    assert_eq!(r.lifecycle("ok on it, 5 min"), Some(Status::InProgress));
    assert_eq!(
        r.lifecycle("Yes will do after the ward round"),
        Some(Status::Accepted)
    );
    assert_eq!(r.lifecycle("Done, on the chart"), Some(Status::Completed));
    assert_eq!(
        r.lifecycle("Scrap that, she's gone home"),
        Some(Status::Cancelled)
    );
    // Cancel is tried before complete: "cancelled, done" cancels.
    assert_eq!(
        r.lifecycle("cancelled it, all done"),
        Some(Status::Cancelled)
    );
    assert_eq!(r.lifecycle("Lovely, speak later"), None);
    assert_eq!(
        without("lifecycle", "start").lifecycle("ok on it, 5 min"),
        None
    );
    assert_eq!(
        without("lifecycle", "accept").lifecycle("Yes will do after the ward round"),
        None
    );
    assert_eq!(
        without("lifecycle", "complete").lifecycle("Done, on the chart"),
        None
    );
    assert_eq!(
        without("lifecycle", "cancel").lifecycle("Scrap that, she's gone home"),
        None
    );
}

#[test]
fn reactions_move_a_task() {
    let r = rules();
    assert_eq!(r.reaction("👍"), Some(Status::Accepted));
    assert_eq!(r.reaction("✅"), Some(Status::Completed));
    assert_eq!(r.reaction("✔\u{fe0f}"), Some(Status::Completed));
    assert_eq!(r.reaction("🎉"), None);
    assert_eq!(without("reactions", "accept").reaction("👍"), None);
}

#[test]
fn words_are_whole() {
    // "need" is not inside "needle"; "ta" is not inside "take".
    assert_eq!(
        rules().request("Needle-stick policy is on the intranet"),
        None
    );
    assert_eq!(words("A.S.A.P. please!"), vec!["a.s.a.p", "please"]);
}

#[test]
fn a_trusts_own_words_need_no_rebuild() {
    let mut t: toml::Table = toml::from_str(DEFAULT_RULES).unwrap();
    t["request"]["imperatives"]
        .as_array_mut()
        .unwrap()
        .push("venesect".into());
    let r = TaskRules::from_toml(&toml::to_string(&t).unwrap()).unwrap();
    assert_eq!(rules().request("Venesect bed 5 this afternoon"), None);
    assert_eq!(
        r.request("Venesect bed 5 this afternoon"),
        Some(Priority::Routine)
    );
    assert!(TaskRules::from_toml("[request]\nverbs = []\n").is_err());
}

#[test]
fn reported_needs_indirect_asks_and_call_outs_are_requests() {
    for (m, p) in [
        (
            "bed 17 pt asking for analgesia, pain 7/10",
            Priority::Routine,
        ),
        (
            "daughter would like a call back about the plan",
            Priority::Routine,
        ),
        (
            "is the TVN around today? new sacral wound",
            Priority::Routine,
        ),
        (
            "physio: could we sit him out for lunch today?",
            Priority::Routine,
        ),
        ("peri-arrest side room 3 - now", Priority::Stat),
        ("2222 bay 4 bed 24, haematemesis", Priority::Stat),
        (
            "pt in bed 13 has a headache and wants paracetamol, not charted",
            Priority::Routine,
        ),
        (
            "still waiting for the corrected discharge summary",
            Priority::Routine,
        ),
        (
            "Referral from ward 12: pt for chest physio",
            Priority::Routine,
        ),
        (
            "amlodipine started Mon, ankles now swollen. Suggest drop to 5mg",
            Priority::Routine,
        ),
        (
            "anybody have a spare size 4 LMA in theatre 2?",
            Priority::Routine,
        ),
        (
            "wound photo from this morning attached, thoughts?",
            Priority::Routine,
        ),
    ] {
        assert_eq!(rules().request(m), Some(p), "{m}");
    }
    assert_eq!(
        rules().request("will physio be up today?"),
        Some(Priority::Routine)
    );
    assert_eq!(
        without("request", "questions").request("will physio be up today?"),
        None
    );
}

#[test]
fn results_and_actions_done_are_not_requests() {
    for m in [
        "Repeat Na 131",
        "repeat gas pH 7.36",
        "Repeat K+ sent",
        "Chest film requested",
    ] {
        assert_eq!(rules().request(m), None, "{m}");
    }
    // Without the function words every verb + two words + number is a result.
    assert_eq!(rules().request("repeat in 30 min"), Some(Priority::Routine));
    assert_eq!(
        without("request", "function_words").request("repeat in 30 min"),
        None
    );
    assert_eq!(
        without("not_request", "status").request("Repeat K+ sent"),
        Some(Priority::Routine)
    );
}

#[test]
fn deadlines_make_a_request_urgent_and_an_opening_now_is_not_a_call_for_now() {
    assert_eq!(
        rules().request("please take bloods before 10"),
        Some(Priority::Urgent)
    );
    assert_eq!(
        without("priority", "deadline").request("please take bloods before 10"),
        Some(Priority::Routine)
    );
    assert_eq!(
        rules().request("could we get his liquid? Now on a soft diet"),
        Some(Priority::Routine)
    );
    assert_eq!(
        rules().request("restart it now please"),
        Some(Priority::Asap)
    );
    assert_eq!(
        rules().request("restart it now and recheck"),
        Some(Priority::Asap)
    );
    // "now" inside a clause is "at present", not a call for now.
    assert_eq!(
        rules().request("can someone review, he is now wandering"),
        Some(Priority::Routine)
    );
    assert_eq!(
        without("priority", "clause_end").request("can someone review, he is now wandering"),
        Some(Priority::Asap)
    );
    assert_eq!(
        without("priority", "followers").request("restart it now please"),
        Some(Priority::Routine)
    );
}

#[test]
fn a_documented_plan_and_a_conditional_are_not_requests() {
    for m in [
        "Seen. Start IV fluids, repeat bone profile tomorrow",
        "yes, switch to co-amox IV 1.2g tds",
        "will write up a PCA if needed",
    ] {
        assert_eq!(rules().request(m), None, "{m}");
    }
    assert_eq!(
        without("not_request", "plan").request("Seen. Start IV fluids"),
        Some(Priority::Routine)
    );
    // A request phrase in a plan is still a request.
    assert_eq!(
        rules().request("Seen. Can someone take a VBG please"),
        Some(Priority::Routine)
    );
}

proptest::proptest! {
    /// Any text, any reaction key: classification never panics.
    #[test]
    fn any_text_is_classified_without_panicking(s in "\\PC{0,200}", k in "\\PC{0,8}") {
        let r = rules();
        let _ = r.request(&s);
        let _ = r.lifecycle(&s);
        let _ = r.reaction(&k);
    }
}
