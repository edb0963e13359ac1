from liveness_service.challenge import ChallengeThresholds, judge_challenge

OPEN, CLOSED = 0.30, 0.12
T = ChallengeThresholds(blink_ratio=0.7, min_open_ear=0.18, turn_degrees=15.0)


def test_blink_is_found_where_the_eyes_close():
    ears = [OPEN, OPEN, OPEN, CLOSED, OPEN, OPEN]
    [outcome] = judge_challenge(["BLINK"], ears, [0.0] * 6, T)
    assert outcome.performed and outcome.frame_index == 3


def test_no_blink_with_eyes_open_throughout_or_untrustworthy_landmarks():
    assert not judge_challenge(["BLINK"], [OPEN, 0.29, 0.31, 0.28], [0.0] * 4, T)[0].performed
    # An open-eye level this low means the EARs are noise: refuse to call a blink.
    assert not judge_challenge(["BLINK"], [0.15, 0.05, 0.15, 0.15], [0.0] * 4, T)[0].performed
    assert not judge_challenge(["BLINK"], [None, None], [None, None], T)[0].performed


def test_turn_direction_follows_the_yaw_sign():
    yaws = [0.0, 5.0, 12.0, 22.0, 10.0]  # positive = the user's own left
    left, right = (
        judge_challenge(["TURN_LEFT"], [OPEN] * 5, yaws, T),
        judge_challenge(["TURN_RIGHT"], [OPEN] * 5, yaws, T),
    )
    assert left[0].performed and left[0].frame_index == 3
    assert not right[0].performed
    negative = [-y for y in yaws]
    assert judge_challenge(["TURN_RIGHT"], [OPEN] * 5, negative, T)[0].performed


def test_a_turn_is_measured_against_the_starting_pose():
    # Already turned 20 degrees at the start and staying there is not a turn.
    assert not judge_challenge(["TURN_LEFT"], [OPEN] * 4, [20.0, 21.0, 22.0, 20.0], T)[0].performed


def test_actions_must_happen_in_the_requested_order():
    ears = [OPEN, CLOSED, OPEN, OPEN, OPEN, OPEN]
    yaws = [0.0, 0.0, 0.0, 20.0, 3.0, 0.0]
    in_order = judge_challenge(["BLINK", "TURN_LEFT"], ears, yaws, T)
    assert [o.performed for o in in_order] == [True, True]
    assert [o.frame_index for o in in_order] == [1, 3]
    wrong_order = judge_challenge(["TURN_LEFT", "BLINK"], ears, yaws, T)
    assert [o.performed for o in wrong_order] == [True, False]
    # Once an action is missing, the later ones are not performed either.
    missing_first = judge_challenge(["TURN_RIGHT", "BLINK"], ears, yaws, T)
    assert [o.performed for o in missing_first] == [False, False]
    assert [o.frame_index for o in missing_first] == [-1, -1]


def test_two_blinks_need_two_separate_closed_frames():
    assert [o.performed for o in judge_challenge(["BLINK", "BLINK"], [OPEN, CLOSED, OPEN], [0.0] * 3, T)] == [
        True,
        False,
    ]
    assert all(o.performed for o in judge_challenge(["BLINK", "BLINK"], [OPEN, CLOSED, OPEN, CLOSED], [0.0] * 4, T))
