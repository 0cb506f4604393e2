"""Long-term memory per user on the fake model: what is kept, what comes back, for whom.

The store is an in-process LangGraph store indexed with cheap word vectors
(tests/support/embeddings.py); the real embeddings and backends are integration tests.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from pydantic import Field

from graph import build_graph
from graph.errors import MessageTooLongError
from graph.settings import Settings
from tests.conftest import thread
from tests.support.embeddings import word_store, word_vectors
from tools.memory.facts import (
    as_term,
    is_self_statement,
    key_terms,
    missing_terms,
    numbers,
    self_statements,
    written_terms,
)
from tools.memory.long_term import (
    clear,
    forget,
    list_memories,
    namespace,
    profile,
    remember_turn,
    search_memories,
)
from tools.memory.store import copy_back
from tools.models import FakeChatModel
from tools.prompting import MESSAGE_OVERHEAD, REPLY_PRIMER, memory_headings

COUNT = FakeChatModel().get_num_tokens

# --- the detector of what users say about themselves ------------------------------------

STATEMENTS = [
    "Hi, I'm Priya.",
    "I work as a marine biologist.",
    "Please remember this for later: my locker code is 4817.",
    "Just so you know, I'm vegetarian and I can't stand coriander.",
    "My name is Tomasz and I live in Lisbon.",
    "Actually, I've changed my mind: my favourite colour is orange now.",
    "I have three cats and two dogs.",
    "I’m allergic to peanuts.",  # a curly apostrophe, as phones type it
    "Call me Sam.",
    "My daughter Lena turns 7 in May.",
    "By the way, my wife's name is Ines.",
    "I was born in 1988.",
    "We have two kids.",
    "I drive a blue Skoda.",
    "FYI my PIN for the gym is 5521.",
    "I prefer metric units.",
]
NOT_STATEMENTS = [
    "What's my name?",
    "Explain like I'm five: what is gravity?",
    "How long should I boil an egg for a runny yolk?",
    "Give me a synonym for 'happy'.",
    "I'm trying to fix my code.",
    "I have a question about Python.",
    "Can you recommend a short novel for a train ride?",
    "Tell me about my horoscope.",
    "I'm not sure what you mean.",
    "Remind me, which herb did I say I can't stand?",
    "Thanks!",
    "Suggest a name for a grey kitten.",
    "I'm looking for a good recipe.",
    "Do you remember my locker code",
]


@pytest.mark.parametrize("sentence", STATEMENTS)
def test_self_statements_are_detected(sentence: str) -> None:
    assert is_self_statement(sentence)


@pytest.mark.parametrize("sentence", NOT_STATEMENTS)
def test_questions_and_requests_are_not_facts(sentence: str) -> None:
    assert not is_self_statement(sentence)


def test_a_message_is_split_into_its_statements() -> None:
    message = "Hi, I'm Priya. What's a good book? I work as a marine biologist."
    assert self_statements(message) == ["Hi, I'm Priya.", "I work as a marine biologist."]


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("Hi, I'm Priya.", {"priya"}),
        ("My name is Tomasz and I live in Lisbon.", {"tomasz", "lisbon"}),
        ("My locker code is 4817.", {"4817"}),
        ("I have three cats and two dogs.", {"3", "2"}),
        ("Priya here.", set()),  # a name that opens the sentence is not told from a word
        ("I'm vegetarian.", set()),
        ("My phone is 07700 900123.", {"07700900123"}),
        ("My rent is 1,250.50 a month.", {"1250.50"}),
        ("My train leaves at 05:30 on 2026/11/30.", {"5:30", "2026-11-30"}),
        ("Call Ingrid on +44 20 7946 0958.", {"ingrid", "+442079460958"}),
        ("I run release v2.1 at 7% load.", {"v2.1", "7%"}),
        ("My freezer is at -18 and my pin is 0042.", {"-18", "0042"}),
    ],
)
def test_key_terms_are_names_and_numbers(text: str, terms: set[str]) -> None:
    assert key_terms(text) == terms


# What the user wrote, and a summary's way of writing a number: (user, summary).
CHANGED_NUMBERS = [
    ("It costs 12.50.", "It costs 1250."),
    ("It costs 12.5.", "It costs 125."),
    ("It costs 12.50.", "It costs 12.5."),  # trailing zeros kept: "3.10" is not "3.1"
    ("I use Python 3.10.", "They use Python 3.1."),
    ("My alarm is at 5:30.", "The alarm is at 530."),
    ("I fly on 2026-11-30.", "They fly on 20261130."),
    ("I fly on 30/11/2026.", "They fly on 3011 2026."),
    ("My number is +44 20 7946 0958.", "The number is 442079460958."),
    ("I owe 1,250.", "They owe 1.25."),  # "1.250" is 1250 (see LOCALE_NUMBERS)
    ("My balance is -3.", "The balance is 3."),
    ("My score went up 7%.", "The score went up 7."),
    ("I run v2.1.", "They run 21."),
    ("My code is 0042.", "The code is 42."),
    ("My room is 3,4.", "The room is 34."),  # not a thousands separator: two numbers
]
# The same number written another way: a summary that writes it so has kept it.
SAME_NUMBERS = [
    ("I owe 1,250.", "They owe 1250."),
    ("My rent is £1,250.00.", "Rent 1250.00 pounds."),
    ("My number is +44 20 7946 0958.", "Number +44-20-7946-0958."),
    ("My number is +44 20 7946 0958.", "Number +442079460958."),
    ("My number is (555) 123-4567.", "Number 555-123-4567."),
    ("My number is 07700 900123.", "Number 07700-900123."),
    ("I fly on 2026/11/30.", "Flight 2026-11-30."),
    ("I fly on 30.11.2026.", "Flight 30/11/2026."),
    ("My alarm is at 05:30.", "Alarm 5:30."),
    ("My score went up 7%.", "Score up 7 percent."),
    ("My freezer is at -18.", "Freezer minus 18."),
    ("I run v2.1.", "They run version 2.1."),
    ("I have three cats.", "They have 3 cats."),
    ("My locker code is 4817.", "Locker: code4817."),
]


# Numbers in the groupings and decimal marks of other locales (the rule: a "," "." "'" or
# space before exactly three digits, and no more, groups thousands; before 1-2 or 4+
# digits, "," or "." is a decimal mark). (user, summary, same number?)
LOCALE_NUMBERS = [
    ("My parking fee is 12,50 \u20ac a day.", "Parking 12.50 EUR a day.", True),
    ("My parking fee is 12,50 \u20ac a day.", "Parking 12 EUR a day for 50 days.", False),
    ("My parking fee is 12,50 \u20ac a day.", "Parking 1250 EUR a day.", False),
    ("My parking fee is 12,5 \u20ac.", "Parking 12.5 EUR.", True),
    ("My parking fee is 12,5 \u20ac.", "Parking 12.50 EUR.", False),
    ("My deposit is 1 250 000 won.", "Deposit 1,250,000 won.", True),
    ("My deposit is 1 250 000 won.", "Deposit 1250000 won.", True),
    ("My deposit is 1 250 000 won.", "Deposit 1, 250 and 0 won.", False),
    ("My deposit is 1 250 000 won.", "Deposit 125000 won.", False),
    ("My deposit is 1\u202f250\u202f000 won.", "Deposit 1250000 won.", True),
    ("My deposit is 1\u00a0250\u00a0000 won.", "Deposit 1.250.000 won.", True),
    ("My salary is 1'250'000 francs.", "Salary 1,250,000 CHF.", True),
    ("My salary is 1\u2019250\u2019000 francs.", "Salary 1250000 CHF.", True),
    ("My salary is 1.250.000 euros.", "Salary 1 250 000 EUR.", True),
    ("My rent is 1.250,50 \u20ac.", "Rent 1,250.50 EUR.", True),
    ("My rent is 1.250,50 \u20ac.", "Rent 1250.5 EUR.", False),
    ("My rent is 1 250,50 \u20ac.", "Rent 1250.50 EUR.", True),
    ("My rent is 1.250 \u20ac.", "Rent 1,250 EUR.", True),
    ("My rent is 1.250 \u20ac.", "Rent 1.25 EUR.", False),
    ("My dose is 0,125 mg.", "Dose 0.125 mg.", True),
    ("My dose is 0,125 mg.", "Dose 125 mg.", False),
    ("My number is 555 123 4567.", "Number 555-123-4567.", True),
    ("My number is 555 123 4567.", "Number 5551234567.", True),
    ("My number is 555-123-4567.", "Number 555 123 4567.", True),
    ("My number is 5551234567.", "Number 555.123.4567.", True),
    ("My number is 555 123 4567.", "Number 555 123 4568.", False),
    ("My train leaves at 17h30.", "Train at 17:30.", True),
    ("My train leaves at 17h30.", "Train at 17 and 30.", False),
    ("My class starts at 9.30am.", "Class at 9:30am.", True),
    ("My class starts at 9:30 pm.", "Class at 21:30.", True),
    ("My class starts at 9:30 pm.", "Class at 9:30am.", False),
    ("I live on the 1st floor.", "Lives on the first floor.", True),
    ("I live on the first floor.", "Lives on floor 1.", True),
    ("I live on the 3rd floor.", "Lives on the second floor.", False),
    ("I have rooms 1,2,3.", "Rooms 1, 2 and 3.", True),
    ("My pi is 3,14159.", "Pi 3.14159.", True),
    ("My room is 3,4.", "Room 3.4.", True),
]


# Numbers as other scripts and locales write them (newcomer probe, 2026-11-30): digits of
# any script are their value, Indian grouping (by twos before the last three), a local
# phone number "555-0100", a whole hour said with noon, midnight, am/pm or o'clock.
# (user, summary, same number?)
SCRIPT_AND_GROUPING_NUMBERS = [
    ("My locker code is \u0664\u0668\u0661\u0667.", "Locker code 4817.", True),  # Arabic-Indic
    ("My locker code is \u06f4\u06f8\u06f1\u06f7.", "Locker code 4817.", True),  # Persian
    ("My locker code is \u096a\u096e\u0967\u096d.", "Locker code 4817.", True),  # Devanagari
    ("I owe \uff11\uff12\uff15\uff10.", "Owes 1250.", True),  # full width
    ("I owe \uff11\uff12\uff15\uff10.", "Owes 1205.", False),
    ("My locker code is 4817.", "Locker code \u0664\u0668\u0661\u0667.", True),
    ("My rent is \u0661\u0662\u066b\u0665\u0660.", "Rent 12.50.", True),  # Arabic decimal mark
    ("My rent is \u0661\u0662\u066b\u0665\u0660.", "Rent 1250.", False),
    ("My salary is 12,50,000 rupees.", "Salary 1250000 rupees.", True),
    ("My salary is 12,50,000 rupees.", "Salary 1,250,000 rupees.", True),
    ("My salary is 12,50,000 rupees.", "Salary 12 and 50000 rupees.", False),
    ("My loan is 1,20,00,000 rupees.", "Loan 12000000 rupees.", True),
    ("My fee is 1,25,000.50 rupees.", "Fee 125000.50 rupees.", True),
    ("My number is 555-0100.", "Number 5550100.", True),
    ("My number is 555-0100.", "Number 555 and 100.", False),
    ("My number is 555-0100.", "Number 555-0199.", False),
    ("Lunch is at 12 noon.", "Lunch at 12:00.", True),
    ("Lunch is at 12:00.", "Lunch at 12 noon.", True),
    ("My shift ends at 12 midnight.", "Shift ends 0:00.", True),
    ("My shift ends at 12 midnight.", "Shift ends 12:00.", False),
    ("My class starts at 5pm.", "Class at 17:00.", True),
    ("My class starts at 5 p.m.", "Class at 5:00.", False),
    ("My alarm is at 7 o'clock.", "Alarm at 7:00.", True),
]


@pytest.mark.parametrize(("said", "summary", "same"), SCRIPT_AND_GROUPING_NUMBERS)
def test_a_number_is_read_whole_in_any_script_and_grouping(
    said: str, summary: str, same: bool
) -> None:
    missing = missing_terms(key_terms(said), summary)
    assert not missing if same else missing, (key_terms(said), key_terms(summary))


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        # ranges and lists stay numbers of their own; only 3 digits, a dash, 4 is a phone
        ("Ages 5-7, years 1990-2000, pages 10-20", ["5", "7", "1990", "2000", "10", "20"]),
        # a western grouping is no Indian one, and the reverse
        ("1,250,000 and 12,50,000 and 1,250,50", ["1250000", "1250000", "1", "250", "50"]),
        # "13 noon" is no time; "I'm 5" is no hour
        ("13 noon, I'm 5, 12 pm", ["13", "5", "12:00"]),
    ],
)
def test_groupings_and_hours_read_only_where_they_are(text: str, terms: list[str]) -> None:
    assert [term for _, _, term in numbers(text)] == terms


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        # ranges: ascending, no leading zero, round bounds; two numbers, whatever their length
        ("Write 100-2000 words.", ["100", "2000"]),
        ("Essays of 500-1000 words, 250-1500 calories", ["500", "1000", "250", "1500"]),
        ("Budget 125-1000 euros", ["125", "1000"]),
        ("Rest 5\u201310 minutes", ["5", "10"]),
        ("From 1990-1995 I lived there", ["1990", "1995"]),
        # codes: a leading zero, a descent, or arbitrary digits stay one number
        ("Call 555-0100.", ["5550100"]),
        ("Call 867-5309 or 555-1234.", ["8675309", "5551234"]),
        ("Call 020-7946-0958.", ["02079460958"]),
        ("Call 555-123-4567.", ["5551234567"]),
    ],
)
def test_a_range_is_two_numbers_and_a_phone_like_code_one(text: str, terms: list[str]) -> None:
    assert [term for _, _, term in numbers(text)] == terms


@pytest.mark.parametrize(
    ("said", "summary", "same"),
    [
        ("My essay must be 100-2000 words.", "Essay: 100 to 2000 words.", True),
        ("My essay must be 100-2000 words.", "Essay: 100 to 3000 words.", False),
        ("My number is 555-0100.", "Number 555 and 100.", False),
        ("My number is 867-5309.", "Number 8675309.", True),
    ],
)
def test_a_summary_may_write_a_range_apart(said: str, summary: str, same: bool) -> None:
    missing = missing_terms(key_terms(said), summary)
    assert not missing if same else missing, (key_terms(said), key_terms(summary))


def test_positions_of_numbers_in_another_script_are_in_the_text() -> None:
    text = "code \u0664\u0668\u0661\u0667 now"
    [(start, end, term)] = numbers(text)
    assert (text[start:end], term) == ("\u0664\u0668\u0661\u0667", "4817")


@pytest.mark.parametrize(("said", "summary", "same"), LOCALE_NUMBERS)
def test_a_number_is_read_whole_in_any_locale(said: str, summary: str, same: bool) -> None:
    missing = missing_terms(key_terms(said), summary)
    assert not missing if same else missing, (key_terms(said), key_terms(summary))


@pytest.mark.parametrize(
    "said", ["At first I hated my job.", "Wait a second, I'm Priya.", "My third try worked."]
)
def test_ordinal_words_are_no_number_a_summary_must_keep(said: str) -> None:
    # "first" keeps the "1" of "1st", but "at first" asks no summary to hold a 1.
    assert not {"1", "2", "3"} & key_terms(said)


def test_a_key_facts_line_shows_a_locale_number_whole() -> None:
    text = "I'm 72 with 5 cats. My deposit is 1 250 000 won and parking is 12,50 \u20ac."
    assert written_terms(text, loose=True) == ["72", "5", "My", "1250000", "12.50"]


@pytest.mark.parametrize(("said", "summary"), CHANGED_NUMBERS)
def test_a_number_written_differently_is_missing(said: str, summary: str) -> None:
    assert missing_terms(key_terms(said), summary), (key_terms(said), key_terms(summary))


@pytest.mark.parametrize(("said", "summary"), SAME_NUMBERS)
def test_the_same_number_written_another_way_is_kept(said: str, summary: str) -> None:
    assert not missing_terms(key_terms(said), summary), (key_terms(said), key_terms(summary))


@pytest.mark.parametrize(
    "text",
    [
        "12.50 1,250 1,250,000 -3 minus 4 7% 7 per cent .5 0042",
        "12,50 1 250 000 1.250,50 1'250 0,125 3,14159 17h30 9.30am 9:30 p.m. the 1st",
        "555 123 4567, 555.123.4567, 192.168.1.1",
        "5:30 17:05:09 2026-11-30 2026/1/5 30.11.2026 30-11-26 11/30",
        "+44 20 7946 0958, (555) 123-4567, 555-123-4567, 020 7946 0958",
        "v2.1 version 3.10 1.2.10 Python 3.10 Rex1 22C the 14th",
        "12,50,000 1,20,00,000.50 555-0100 12 noon 12 midnight 5pm 7 o'clock \u0664\u0668",
    ],
)
def test_a_number_shown_in_its_canonical_form_reads_back_as_itself(text: str) -> None:
    terms = [term for _, _, term in numbers(text)]
    assert all("," not in t and ";" not in t for t in terms)  # "Key facts:" splits at ","
    assert [term for _, _, term in numbers(", ".join(terms))] == terms
    assert [as_term(t) for t in terms] == terms


def test_numbers_are_read_whole_and_separately() -> None:
    text = "Ages 5-7, 1990-2000, seat 22C, rooms 3, 4, 12:75, 1,2,3 and 1,250,50 in 2026 150"
    assert [term for _, _, term in numbers(text)] == [
        "5", "7", "1990", "2000", "22", "3", "4", "12", "75", "1", "2", "3", "1", "250", "50",
        "2026", "150",
    ]  # fmt: skip


# --- the store: namespaces, keep, list, search, forget, clear ---------------------------


def test_users_are_kept_apart_by_a_hash_whatever_their_ids() -> None:
    ids = ["ada", "Ada", "ADA", "ada2", "ada.l@example.com", "ada l", "アダ"]
    labels = {namespace(u, "facts")[1] for u in ids}
    assert len(labels) == len(ids)
    assert all(len(label) == 32 and label.isalnum() for label in labels)
    store = word_store()
    assert store is not None
    for user in ids:
        remember_turn(
            store, user, message=f"My name is {user}.", reply="ok", thread_id="t", message_id=None
        )
    for user in ids:
        assert [m.text for m in list_memories(store, user, kinds=("facts",))] == [
            f"My name is {user}."
        ]


def test_keep_list_search_forget_clear() -> None:
    store = word_store()
    assert store is not None
    kept = remember_turn(
        store,
        "ada",
        message="Hi, I'm Ada. My locker code is 4817. What's the time?",
        reply="It is noon.",
        thread_id="t1",
        message_id="m1",
    )
    assert [(m.kind, m.text) for m in kept] == [
        ("facts", "Hi, I'm Ada."),
        ("facts", "My locker code is 4817."),
        ("turns", "Hi, I'm Ada. My locker code is 4817. What's the time?"),
    ]
    remember_turn(
        store,
        "ada",
        message="How do I boil an egg?",
        reply="Six minutes.",
        thread_id="t1",
        message_id="m2",
    )
    assert len(list_memories(store, "ada")) == 4
    assert [m.key for m in list_memories(store, "ada", kinds=("turns",))] == ["turn-m2", "turn-m1"]
    found = search_memories(store, "ada", "what was my locker code", kinds=("turns",), limit=1)
    assert found[0].key == "turn-m1" and found[0].score is not None and found[0].score > 0
    assert found[0].reply == "It is noon."
    # the same turn kept twice (a retried write) is one memory
    remember_turn(
        store,
        "ada",
        message="How do I boil an egg?",
        reply="Six.",
        thread_id="t1",
        message_id="m2",
        facts=False,
    )
    assert len(list_memories(store, "ada", kinds=("turns",))) == 2
    assert forget(store, "ada", kept[0].key) and not forget(store, "ada", kept[0].key)
    assert not forget(store, "bob", kept[1].key)  # another user's key is not theirs to forget
    # The fact went with the turn that stated it (turn-m1): a fact and turn-m2 are left.
    assert sorted(m.kind for m in list_memories(store, "ada")) == ["facts", "turns"]
    assert clear(store, "ada") == 2
    assert list_memories(store, "ada") == []


def test_memories_written_during_an_outage_are_copied_back() -> None:
    local, remote = word_store(), word_store()
    assert local is not None and remote is not None
    remember_turn(
        local, "ada", message="My locker code is 4817.", reply="ok", thread_id="t", message_id="m1"
    )
    remember_turn(
        remote, "ada", message="I live in Oslo.", reply="ok", thread_id="t", message_id="m0"
    )
    assert copy_back(local, remote) == 2
    assert {m.text for m in list_memories(remote, "ada")} == {
        "My locker code is 4817.",
        "I live in Oslo.",
    }
    assert list_memories(local, "ada") == []
    assert search_memories(remote, "ada", "locker code", kinds=("turns",))[0].key == "turn-m1"


# --- through the graph: recall before the reply, remember after it ----------------------


class PrefillingModel(FakeChatModel):
    """The fake model, recording what it was asked to warm (as llama.cpp would)."""

    prefilled: list[list[BaseMessage]] = Field(default_factory=list)

    def prefill(self, messages: Sequence[BaseMessage], *, persist: bool = False) -> int:
        self.prefilled.append(list(messages))
        return len(messages)


@pytest.fixture
def model() -> PrefillingModel:
    return PrefillingModel(reply="Noted.")


@pytest.fixture
def store() -> InMemoryStore:
    made = word_store()
    assert isinstance(made, InMemoryStore)
    return made


@pytest.fixture
def graph(
    make_settings: Callable[..., Settings], model: FakeChatModel, store: InMemoryStore
) -> Any:
    # Word vectors score lower than the real embeddings: a lower bar for recall.
    settings = make_settings(long_term={"min_score": 0.3})
    return build_graph(settings, checkpointer=InMemorySaver(), store=store, model=model)


def ask(graph: Any, text: str, name: str = "t1", **context: Any) -> dict[str, Any]:
    state: dict[str, Any] = graph.invoke(
        {"messages": [("user", text)]}, thread(name), context=context
    )
    return state


def prompt_text(model: FakeChatModel, index: int = -1) -> str:
    return "\n".join(m.text for m in model.calls[index])


def test_facts_follow_the_user_into_a_new_thread(graph: Any, model: FakeChatModel) -> None:
    ask(graph, "Hi, I'm Priya. My locker code is 4817.", "a", user_id="priya")
    state = ask(graph, "What's my name?", "b", user_id="priya")
    system = model.calls[-1][0]
    assert system.type == "system"
    assert "- Hi, I'm Priya.\n- My locker code is 4817." in system.text
    assert "Hi, I'm Priya." in state["profile"]


def test_another_user_never_gets_them(
    graph: Any, model: FakeChatModel, store: InMemoryStore
) -> None:
    ask(graph, "Hi, I'm Priya. My locker code is 4817.", "a", user_id="priya")
    state = ask(graph, "What was my locker code?", "b", user_id="bob")
    assert "4817" not in prompt_text(model) and "Priya" not in prompt_text(model)
    assert state["profile"] == "" and state["memories"] == []
    assert [m.text for m in list_memories(store, "bob")] == ["What was my locker code?"]


def test_in_a_shared_thread_each_turn_carries_its_own_senders_facts(
    graph: Any, model: FakeChatModel
) -> None:
    """A group chat or a shared API thread: one thread, several users, one after another."""
    ask(graph, "Hi, I'm Alice. My locker code is 4817.", "alice-private", user_id="alice")
    ask(graph, "I'm Bob and I live in Oslo.", "bob-private", user_id="bob")
    ask(graph, "hello group", "group", user_id="alice")
    assert "4817" in model.calls[-1][0].text  # Alice's own turn has her facts
    state = ask(graph, "What is my locker code?", "group", user_id="bob")
    system = model.calls[-1][0].text
    assert "4817" not in system and "Alice" not in system
    assert "Oslo" in system and state["profile_user"] == "bob"
    ask(graph, "and mine?", "group", user_id="carol")  # no facts at all
    assert "4817" not in model.calls[-1][0].text and "Oslo" not in model.calls[-1][0].text
    ask(graph, "back to me", "group", user_id="alice")
    assert "4817" in model.calls[-1][0].text and "Oslo" not in model.calls[-1][0].text


def test_recall_false_brings_back_nothing_not_even_facts_loaded_before(
    graph: Any, model: FakeChatModel, store: InMemoryStore
) -> None:
    ask(graph, "Hi, I'm Zed. My PIN is 5521.", "a", user_id="api")
    ask(graph, "Which PIN did I give you?", "b", user_id="api")
    assert "5521" in prompt_text(model)
    state = ask(
        graph, "Which PIN did I give you?", "b", user_id="api", recall=False, remember=False
    )
    assert "5521" not in prompt_text(model) and "Zed" not in prompt_text(model)
    assert state["profile"] == "" and state["memories"] == []
    assert len(list_memories(store, "api", kinds=("turns",))) == 2  # the last kept nothing


def test_recall_false_keeps_facts_out_of_a_summarised_prefix_too(
    make_settings: Callable[..., Settings], model: PrefillingModel, store: InMemoryStore
) -> None:
    settings = make_settings(summarisation={"max_turns": 2, "keep_turns": 1})
    graph = build_graph(settings, checkpointer=InMemorySaver(), store=store, model=model)
    ask(graph, "My locker code is 4321.", "mine", user_id="alice")
    off = {"user_id": "alice", "recall": False}
    states = [ask(graph, f"question {n}", "other", **off) for n in range(4)]
    assert all(s["profile"] == "" for s in states)
    assert all("4321" not in m.text for call in model.calls[1:] for m in call)
    assert all("4321" not in m.text for call in model.prefilled for m in call)


def test_forgetting_a_fact_forgets_the_turn_that_stated_it(
    graph: Any, model: FakeChatModel, store: InMemoryStore
) -> None:
    ask(graph, "Please keep this: my locker code is 4817.", "a", user_id="priya")
    ask(graph, "How do I get wax out of a tablecloth?", "a", user_id="priya")
    (fact,) = list_memories(store, "priya", kinds=("facts",))
    assert forget(store, "priya", fact.key)
    assert [m.text for m in list_memories(store, "priya")] == [
        "How do I get wax out of a tablecloth?"
    ]
    state = ask(graph, "Which locker code did I give you?", "b", user_id="priya")
    assert "4817" not in prompt_text(model) and state["memories"] == []


def test_a_fact_kept_before_facts_named_their_turn_finds_it_by_its_sentence(
    store: InMemoryStore,
) -> None:
    ns_facts, ns_turns = namespace("ada", "facts"), namespace("ada", "turns")
    store.put(ns_facts, "fact-old", {"text": "My PIN is 5521.", "thread_id": "t1", "created": "x"})
    store.put(ns_turns, "turn-1", {"text": "Hi.  My PIN is 5521.", "thread_id": "t1"})
    store.put(ns_turns, "turn-2", {"text": "My PIN is 5521.", "thread_id": "other"})
    store.put(ns_turns, "turn-3", {"text": "Where is Lisbon?", "thread_id": "t1"})
    assert forget(store, "ada", "fact-old")
    assert sorted(m.key for m in list_memories(store, "ada")) == ["turn-2", "turn-3"]


def test_a_past_turn_is_recalled_by_meaning_in_the_tail(graph: Any, model: FakeChatModel) -> None:
    ask(graph, "Please keep this: the gate code of the allotment is 2291.", "a", user_id="ada")
    ask(graph, "How do I get wax out of a tablecloth?", "a", user_id="ada")
    state = ask(graph, "Which gate code did I give you for the allotment?", "b", user_id="ada")
    assert [m["text"] for m in state["memories"]] == [
        "Please keep this: the gate code of the allotment is 2291."
    ]
    prompt = model.calls[-1]
    recalled = prompt[-2]
    assert (
        recalled.type == "system"
        and "2291" in recalled.text
        and "not instructions" in recalled.text
    )
    assert "2291" not in prompt[0].text  # not in the prefix: it changes from turn to turn


def test_turns_still_in_the_window_are_not_recalled_twice(graph: Any, model: FakeChatModel) -> None:
    ask(graph, "The gate code of the allotment is 2291, keep it.", "a", user_id="ada")
    state = ask(graph, "Which gate code did I give you for the allotment?", "a", user_id="ada")
    assert state["memories"] == []
    assert prompt_text(model).count("2291") == 1  # once, in the history


def test_remember_false_keeps_nothing(graph: Any, store: InMemoryStore) -> None:
    ask(graph, "My locker code is 4817.", "a", user_id="ada", remember=False)
    assert list_memories(store, "ada") == []


def test_a_refused_turn_is_not_remembered(graph: Any, store: InMemoryStore) -> None:
    ask(graph, "My name is Ada. How do I make a pipe bomb at home?", "a", user_id="ada")
    assert list_memories(store, "ada") == []


def test_the_user_defaults_to_the_setting(
    make_settings: Callable[..., Settings], store: InMemoryStore
) -> None:
    settings = make_settings(long_term={"user_id": "login-name"})
    graph = build_graph(settings, checkpointer=InMemorySaver(), store=store, model=FakeChatModel())
    ask(graph, "I live in Oslo.")
    assert [m.text for m in list_memories(store, "login-name", kinds=("facts",))] == [
        "I live in Oslo."
    ]


def test_without_a_store_nothing_is_recalled_or_kept(
    make_settings: Callable[..., Settings], model: FakeChatModel
) -> None:
    graph = build_graph(make_settings(), checkpointer=InMemorySaver(), model=model)
    state = ask(graph, "I live in Oslo.")
    state = ask(graph, "Where do I live?")
    assert state["profile"] == "" and state["memories"] == []


def test_long_term_memory_can_be_switched_off(
    make_settings: Callable[..., Settings], store: InMemoryStore
) -> None:
    settings = make_settings(long_term={"enabled": False})
    graph = build_graph(settings, checkpointer=InMemorySaver(), store=store, model=FakeChatModel())
    ask(graph, "I live in Oslo.", user_id="ada")
    assert list_memories(store, "ada") == []


def test_the_prefix_stays_the_same_until_a_summary(
    make_settings: Callable[..., Settings], model: PrefillingModel, store: InMemoryStore
) -> None:
    settings = make_settings(summarisation={"max_turns": 4, "keep_turns": 1})
    graph = build_graph(settings, checkpointer=InMemorySaver(), store=store, model=model)
    ask(graph, "I live in Oslo.", "old", user_id="ada")  # a fact from an earlier thread
    texts = [
        "Hi, I'm Priya.",
        "I work as a marine biologist.",
        "Tell me a joke.",
        "Why is the sky blue?",
    ]
    for text in texts:
        ask(graph, text, "new", user_id="ada")
    chats = [c for c in model.calls if "running summary" not in c[0].text][1:]
    systems = {c[0].text for c in chats}
    assert len(systems) == 1, "the system prompt changed before a summary"
    assert "I live in Oslo." in chats[0][0].text and "Priya" not in chats[0][0].text
    ask(graph, "What is my job?", "new", user_id="ada")  # the fifth turn: summarised
    state = ask(graph, "And my name?", "new", user_id="ada")
    system = model.calls[-1][0].text
    assert "- Hi, I'm Priya." in system and "marine biologist" in system  # refreshed facts
    assert state["summary"]
    # right after the summary, the next prompt's prefix was warmed: system + kept turn
    warmed = model.prefilled[-1]
    assert warmed[0].text == system
    assert [m.text for m in warmed[1:]] == [m.text for m in model.calls[-1][1:3]]


# --- one prompt budget --------------------------------------------------------------------


def eli5_message(model: FakeChatModel, tokens: int) -> str:
    words = ["why", "does", "the", "moon", "change", "its", "shape", "every", "night", "and"]
    text = "Explain like I'm five:"
    n = 0
    while model.get_num_tokens(text) < tokens:
        text += " " + words[n % len(words)]
        n += 1
    return text


def test_a_message_that_fits_only_without_the_concept_prompt_is_rejected_cleanly(
    make_settings: Callable[..., Settings],
) -> None:
    """The issue's case: it passed check_input, then failed in generate, leaving the message."""
    settings = make_settings(context={"max_prompt_tokens": 256})
    model = FakeChatModel()
    graph = build_graph(settings, checkpointer=InMemorySaver(), store=word_store(), model=model)
    ask(graph, "Hi")
    # What check_input counts (message, system prompt, template) fits the budget exactly.
    system = model.get_num_tokens(model.calls[0][0].text)
    message = eli5_message(model, 256 - system - 2 * 6 - 4)
    with pytest.raises(MessageTooLongError, match="concept prompt"):
        ask(graph, message)
    messages = graph.get_state(thread()).values["messages"]
    assert [m.type for m in messages] == ["human", "ai"]
    assert len(model.calls) == 1  # the model never saw it
    assert ask(graph, "still there?")["messages"][-1].text


def test_optional_parts_shrink_before_the_message_is_refused(
    make_settings: Callable[..., Settings], store: InMemoryStore
) -> None:
    settings = make_settings(context={"max_prompt_tokens": 320})
    model = FakeChatModel()
    graph = build_graph(settings, checkpointer=InMemorySaver(), store=store, model=model)
    ask(graph, "The gate code of the allotment is 2291. " * 12, "a", user_id="ada")
    for n in range(4):
        ask(
            graph,
            f"Tell me fact number {n} about gates and allotments, please.",
            "b",
            user_id="ada",
        )
    state = ask(graph, "Which gate code of the allotment did I give? " * 6, "b", user_id="ada")
    assert state["prompt_tokens"] <= 320
    assert state["messages"][-1].type == "ai"


# The user's facts give way (oldest line first) before a message is called too long.
USER_FACTS = [
    "Hi, I'm Priya.",
    "My locker code is 4817.",
    "I live in Tromsø, at Storgata 12.",
    "My dog Biscuit is 7 years old.",
    "I can't eat peanuts.",
    "My sister Ingrid works at Equinor since 2019.",
]
FILLER = ["tell", "me", "about", "the", "old", "stone", "bridge", "in", "the", "village", "and"]
TEMPLATE = 3 * MESSAGE_OVERHEAD + REPLY_PRIMER  # what generate counts for the wrapping


def sized_message(tokens: int) -> str:
    """A plain question (no concept, no fact) of exactly ``tokens`` fake-model tokens."""
    return " ".join(FILLER[n % len(FILLER)] for n in range(tokens))


def facts_graph(
    make_settings: Callable[..., Settings], budget: int, model: FakeChatModel
) -> tuple[Any, list[str], int]:
    """A graph for a user who has told it USER_FACTS; their profile lines; the bare system."""
    store = word_store()
    assert store is not None
    for fact in USER_FACTS:
        remember_turn(store, "ada", message=fact, reply="Noted.", thread_id="old", message_id=None)
    settings = make_settings(context={"max_prompt_tokens": budget})
    graph = build_graph(settings, checkpointer=InMemorySaver(), store=store, model=model)
    lines = profile(list_memories(store, "ada", kinds=("facts",)), COUNT, 10_000).splitlines()
    assert [line.removeprefix("- ") for line in lines] == USER_FACTS
    ask(graph, "hi", "probe", user_id="nobody")  # no facts: the bare system prompt
    return graph, lines, COUNT(model.calls[-1][0].text)


def newest_that_fit(lines: list[str], room: int) -> list[str]:
    """The newest whole lines within ``room`` tokens with their heading (oldest first)."""
    room -= COUNT(memory_headings().profile) + 2
    kept: list[str] = []
    for line in reversed(lines):
        room -= COUNT(line) + 1
        if room < 0:
            break
        kept.insert(0, line)
    return kept


@pytest.mark.parametrize(
    ("budget", "facts_room"),
    [
        (160, "none"),  # the message fills the budget with the bare system prompt
        (200, "one"),
        (200, "some"),
        (200, "none"),
        (256, "all"),  # nothing gives way
        (256, "some"),
        (256, "one"),
        (256, "none"),
        (320, "all"),
        (320, "some"),
    ],
)
def test_the_users_facts_give_way_before_the_message_is_too_long(
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    budget: int,
    facts_room: str,
) -> None:
    model = FakeChatModel(reply="Noted.")
    graph, lines, bare = facts_graph(make_settings, budget, model)
    block = COUNT(memory_headings().profile) + 2 + sum(COUNT(line) + 1 for line in lines)
    newest = COUNT(memory_headings().profile) + 2 + COUNT(lines[-1]) + 1
    left = {"all": block, "some": block // 2, "one": newest, "none": 0}[facts_room]
    free = budget - bare - TEMPLATE  # what the message may take with no facts at all
    assert free - left > 0
    message = sized_message(free - left)
    with caplog.at_level(logging.WARNING, logger="assistant.generate"):
        state = ask(graph, message, "b", user_id="ada")
    assert state["messages"][-1].text == "Noted." and state["concept"] is None
    assert state["prompt_tokens"] <= budget
    system = model.calls[-1][0].text
    kept = [line for line in lines if line in system.splitlines()]
    assert kept == newest_that_fit(lines, left)  # the newest whole lines, oldest first
    assert (memory_headings().profile in system) == bool(kept)
    assert state["profile"] == "\n".join(lines)  # only this prompt's copy was cut
    assert ("the user's facts" in caplog.text) == (facts_room != "all")


@pytest.mark.parametrize("budget", [160, 256])
@pytest.mark.parametrize("over", [1, 6, 7, 40])
def test_a_message_too_long_without_the_facts_is_still_rejected_and_says_why(
    make_settings: Callable[..., Settings], budget: int, over: int
) -> None:
    model = FakeChatModel(reply="Noted.")
    graph, lines, bare = facts_graph(make_settings, budget, model)
    calls = len(model.calls)
    message = sized_message(budget - bare - TEMPLATE + over)
    with pytest.raises(MessageTooLongError) as raised:
        ask(graph, message, "b", user_id="ada")
    if over <= MESSAGE_OVERHEAD:
        # Past check_input (which counts one message wrapping fewer), caught in generate
        # with the facts already left out: the message, not the facts, is named.
        needed = bare + COUNT(message) + TEMPLATE
        assert str(raised.value) == (
            f"the message needs {needed} prompt tokens with the system prompt (without the "
            f"user's facts); the budget (context.max_prompt_tokens) is {budget}. Shorten "
            "the message."
        )
    else:  # check_input never counts the facts
        assert re.fullmatch(
            rf"the message needs \d+ prompt tokens with the system prompt; the budget "
            rf"\(context\.max_prompt_tokens\) is {budget}\. Shorten the message\.",
            str(raised.value),
        )
    assert len(model.calls) == calls  # the model never saw it
    assert graph.get_state(thread("b")).values["messages"] == []
    # a message that fits gets the newest facts that fit next to it
    question = "Which dog do I have?"
    state = ask(graph, question, "b", user_id="ada")
    system = model.calls[-1][0].text.splitlines()
    room = budget - bare - TEMPLATE - COUNT(question)
    assert [line for line in lines if line in system] == newest_that_fit(lines, room)
    assert state["messages"][-1].text == "Noted."


def test_the_summary_gives_way_before_the_facts(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    model = FakeChatModel(reply="Noted.")
    budget = 320
    graph, lines, bare = facts_graph(make_settings, budget, model)
    ask(graph, "hello", "b", user_id="ada")
    summary = "The user asked about the Glass Tower of Wexmoor, finished in 1911."
    graph.update_state(thread("b"), {"summary": summary}, as_node="summarise")
    # room for the two newest facts, none for the summary
    two = newest_that_fit(lines, 10_000)[-2:]
    left = COUNT(memory_headings().profile) + 2 + sum(COUNT(line) + 1 for line in two)
    with caplog.at_level(logging.WARNING, logger="assistant.generate"):
        state = ask(graph, sized_message(budget - bare - TEMPLATE - left), "b", user_id="ada")
    system = model.calls[-1][0].text
    assert state["messages"][-1].text == "Noted." and state["prompt_tokens"] <= budget
    assert "Wexmoor" not in system and [ln for ln in lines if ln in system] == two
    assert "running summary" in caplog.text and "the user's facts" in caplog.text
    assert state["summary"] == summary
    # a message that leaves room for everything gets everything again
    ask(graph, "Thanks.", "b", user_id="ada")
    system = model.calls[-1][0].text
    assert "Wexmoor" in system and all(line in system for line in lines)


# --- the SQLite store embeds the text of a memory, and searches by meaning -------------


class RecordingEmbeddings(Embeddings):
    """Word vectors that remember which texts they were asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += texts
        return word_vectors(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def test_the_sqlite_store_embeds_only_the_text_and_finds_it(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SqliteStore 3.1.2 ignored the index's "fields" and embedded the whole JSON value."""
    from tools.memory import store as store_module

    recording = RecordingEmbeddings()
    monkeypatch.setattr(store_module, "_EMBEDDINGS", recording)
    with store_module.open_sqlite_store(make_settings()) as sqlite:
        remember_turn(
            sqlite,
            "ada",
            message="The gate code is 2291.",
            reply="ok",
            thread_id="t",
            message_id="m1",
        )
        remember_turn(
            sqlite,
            "ada",
            message="How do I boil an egg?",
            reply="ok",
            thread_id="t",
            message_id="m2",
        )
        assert recording.texts == ["The gate code is 2291.", "How do I boil an egg?"]
        found = search_memories(sqlite, "ada", "which gate code", kinds=("turns",))
    assert [m.key for m in found][:1] == ["turn-m1"]
    assert found[0].score is not None and found[0].score > found[-1].score  # type: ignore[operator]
