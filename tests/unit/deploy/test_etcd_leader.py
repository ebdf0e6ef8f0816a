"""Who leads the etcd cluster, from what its members answer (`kubelite bootstrap etcd-members`)."""

from __future__ import annotations

import pytest

from deploy.node.etcdadmin import reported_leader


@pytest.mark.parametrize(("answers", "leader"), [
    ([(4, 11), (4, 11), (4, 11)], 11),  # everyone agrees
    ([(4, 11), (4, 11)], 11),  # the leader itself did not answer: the others still name it
    ([(4, 11), (5, 22), (5, 22)], 22),  # a member that missed the election names the deposed leader
    ([(5, 22), (4, 11)], 22),  # in any order
    ([(6, 0), (5, 22)], 22),  # mid-election a member names nobody; one that still names a leader is believed
    ([(6, 0), (6, 0)], 0),  # nobody leads
    ([], 0),  # nobody answered
])
def test_the_leader_is_the_one_named_at_the_highest_term(answers: list[tuple[int, int]], leader: int) -> None:
    assert reported_leader(answers) == leader
