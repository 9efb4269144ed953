"""store/leading.py: the leader/follower queue's hand-offs, one step at a time."""

from __future__ import annotations

from connector.store.leading import LeaderQueue, Queued


def _queue_of(count: int) -> tuple[LeaderQueue[Queued], list[Queued]]:
    queue: LeaderQueue[Queued] = LeaderQueue()
    items = [Queued() for _ in range(count)]
    assert [queue.join(item) for item in items] == [True] + [False] * (count - 1)
    return queue, items


def test_a_follower_that_leaves_is_neither_taken_nor_handed_the_lead():
    queue, (leader, gone, waiting) = _queue_of(3)
    assert queue.take(1) == [leader]
    assert queue.leave(gone) is True
    queue.hand_on()
    assert waiting.leads and not gone.leads
    assert queue.take(10) == [waiting]


def test_a_follower_handed_the_lead_as_it_gives_up_cannot_leave():
    queue, (leader, follower) = _queue_of(2)
    queue.take(1)
    queue.hand_on()
    assert follower.wait(0) is True and follower.leads  # woken to lead …
    assert queue.leave(follower) is False  # … so it must: the lead is not lost with it
    assert queue.take(10) == [follower]


def test_a_follower_a_leader_took_cannot_leave():
    queue, (leader, follower) = _queue_of(2)
    assert queue.take(10) == [leader, follower]
    assert queue.leave(follower) is False
    assert follower.wait(0) is False  # it is the leader's to finish
    follower.finish()
    assert follower.wait(0) is True


def test_the_last_to_leave_leaves_nobody_leading_when_the_leader_hands_on():
    queue, (leader, follower) = _queue_of(2)
    queue.take(1)
    assert queue.leave(follower) is True
    queue.hand_on()  # nothing queued: the leading is over
    assert queue.join(Queued()) is True


def test_lead_finishes_its_batch_and_hands_on_and_an_interrupt_fails_everyone_queued():
    queue, (leader, follower, behind) = _queue_of(3)
    written: list[list[Queued]] = []
    queue.lead(2, written.append)
    assert written == [[leader, follower]]
    assert follower.wait(0) is True and not follower.leads  # finished, not promoted
    assert behind.leads  # the lead went to the first still waiting

    def interrupted(batch: list[Queued]) -> None:
        raise KeyboardInterrupt

    queue.join(late := Queued())  # queued behind the new leader
    try:
        queue.lead(1, interrupted)
    except KeyboardInterrupt:
        pass
    assert isinstance(behind.error, KeyboardInterrupt) and isinstance(late.error, KeyboardInterrupt)
    assert late.wait(0) is True  # finished: nobody left waiting
    assert queue.join(Queued()) is True  # and the next to come leads
