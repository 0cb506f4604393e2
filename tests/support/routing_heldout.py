"""Routing phrasings held out of calibration: the router never learns from them.

Written before the router's examples (prompts/concepts.yaml) and never added to them or
to the routing corpus; ``tests/integration/test_routing_meaning.py`` measures the router
on them, and ``tests/unit/test_routing.py`` checks that no example copies one. Each is a
message and the concept it asks for (None: it must not route), the way people type.
"""

from __future__ import annotations

HELD_OUT: list[tuple[str, str | None]] = [
    (
        "Could you break down how vaccines train the immune system for a ten year old?",
        "explain_simply",
    ),
    ("Explain taxes to me like I know nothing about money", "explain_simply"),
    ("Put simply, what's machine learning?", "explain_simply"),
    ("What is the meaning of 'ephemeral'?", "define_term"),
    ("Define 'latency' for me", "define_term"),
    ("What does the acronym GDPR stand for", "define_term"),
    ("Which is cheaper to run, a gas boiler or a heat pump?", "compare"),
    ("How is a virus different from a bacterium?", "compare"),
    ("iPad vs laptop for a student", "compare"),
    ("How do I bake sourdough? Walk me through each stage", "step_by_step"),
    ("List the steps to change a car's oil", "step_by_step"),
    (
        "Give me the short version of this paragraph: Our Q3 revenue rose 12% while costs "
        "fell, so we will hire ten engineers.",
        "summarise",
    ),
    (
        "Summarise the following notes: meeting moved, budget approved, Sam leaves in May.",
        "summarise",
    ),
    ("What's Moby Dick about?", "summarise_book"),
    ("Tell me the story of Pride and Prejudice in a few lines", "summarise_book"),
    ("Tell me something that will make me laugh about cats", "joke"),
    ("Do you know any dad jokes?", "joke"),
    ("Share an amazing fact about space", "fun_fact"),
    ("Teach me a random bit of trivia about ancient Egypt", "fun_fact"),
    ("What is this Python doing? print(sum(x for x in range(5)))", "explain_code"),
    (
        "Could you go through this function line by line and tell me what it does? "
        "def g(a): return a[::-1]",
        "explain_code",
    ),
    ("This throws a KeyError, why? d = {}; d['x'] += 1", "debug_code"),
    ("my javascript keeps saying undefined is not a function, how do I fix it", "debug_code"),
    ("What are the advantages and drawbacks of solar panels?", "pros_cons"),
    ("Good and bad sides of working from home?", "pros_cons"),
    ("Explain a neural network with a metaphor from cooking", "analogy"),
    ("What is DNS similar to in real life?", "analogy"),
    ("Test me on the capitals of Europe", "quiz"),
    ("Make me a short quiz about photosynthesis", "quiz"),
    ("How would I say 'I'm lost' in Japanese?", "translate"),
    ("Translate to Spanish: the meeting is at noon", "translate"),
    ("Come up with some slogans for my coffee shop", "brainstorm"),
    ("Any ideas for a team-building activity?", "brainstorm"),
    ("Please correct the grammar: she don't like apples", "proofread"),
    (
        "Polish this paragraph so it reads better: we was happy with the results and we wants more",
        "proofread",
    ),
    ("What's the weather like in Paris in April?", None),
    ("Who wrote the song Bohemian Rhapsody?", None),
    ("I can't define my feelings about my job anymore, should I quit?", None),
    ("My brother is such a joke, how do I deal with him?", None),
    ("Is the quiz show Jeopardy still on TV?", None),
    ("How do I translate my salary into an hourly rate?", None),
    ("I summed up the courage to ask her out, what now?", None),
    ("Give me a recipe for lasagna", None),
    ("What's 17 times 23?", None),
    ("Set a reminder for 9am", None),
    (
        "The step-by-step instructions that came with my IKEA shelf are missing a screw, "
        "where can I get one?",
        None,
    ),
    ("Who is the funniest comedian alive?", None),
    ("What are the opening hours of the British Museum?", None),
]
