"""A command leading a request, and whether what follows is something its concept acts on.

A summary command ("tl;dr", "tldr", "give me the gist") needs text to summarise: the
user's own TL;DR marker before a question of theirs must not route (the concept's
``command_object`` in prompts/concepts.yaml). A question IS what "ELI5" explains, and
"proofread"/"rephrase" act on any text, a question included. Written for the bug
"TLDR; the meeting is at 5, where is it?" routed to summarise; ``tests/unit/test_routing.py``
runs them with the aliases alone, ``tests/unit/test_routing_meaning.py`` with the real
embedding model. None is an example or no_concept request of the concept file.
"""

from __future__ import annotations

# A pasted passage that happens to end with a question (its own, not the user's).
_PASSAGE = (
    "The city council met on Tuesday to discuss the future of the old tram depot. "
    "Developers want to turn it into flats, while residents have asked for a park and "
    "a weekly market. The council will publish both plans in June and hold a public "
    "vote in September. Which plan will the city choose?"
)
_NOTES = (
    "Budget for next year approved at 2.1 million.\n"
    "The launch moves from March to May because the supplier is late.\n"
    "Two new hires in sales start in February; Maria leads the onboarding.\n"
    "Where the offsite happens is still open, Lisbon or Porto, and Ana will ask for quotes "
    "before the end of the month."
)

# The user's own TL;DR (or the gist) before a question to the assistant: no text to
# summarise, so no summary (they get the base prompt).
SUMMARY_LOOK_ALIKES: list[str] = [
    "TLDR; the meeting is at 5, where is it?",
    "tl;dr I'm tired, any tips?",
    "TL;DR: my cat sneezes after every meal. Is this normal?",
    "tldr - the printer says offline but it's plugged in, what do I do?",
    "TL;DR my landlord won't fix the heating, can I withhold rent?",
    "tl;dr: I got a job offer abroad and my partner is unsure. What should we do?",
    "TL;DR my boss sent me an email about overtime, what should I reply?",
    "tldr ok so, does anyone know when the post office opens on Saturdays?",
    "TLDR the train was cancelled again - who do I complain to??",
    "Give me the gist: how do I get to the station from here?",
    # other languages after the marker (the full-width question mark folds to "?")
    "TLDR: das Meeting ist um 5, wo ist es?",
    "TL;DR : la réunion est à 17 h, où est-elle ?",
    "tl;dr: la reunión es a las 5, ¿dónde es?",
    "TLDR; встреча в пять, где она?",
    "tl;dr la riunione è alle 5, dove si trova？",
    # a statement of the user's own before the question, whatever the question's words
    "tl;dr meeting at 5, location?",
    "TLDR; la riunione è alle 5, dov'è?",
    "tl;dr my flight got cancelled, what are my rights?",
    "TL;DR my laptop won't boot, what should I try?",
    "tldr: I forgot my password, how do I reset it?",
    "tl;dr I have 2 job offers, which one should I take?",
    "TLDR the dog ate chocolate, is it dangerous?",
    "tl;dr: rent went up 20%, is that legal?",
    "tl;dr: broke my phone screen, cost to fix?",
    "TLDR: mein Zug fällt aus, was kann ich tun?",
    "tl;dr : j'ai perdu mes clés, que faire ?",
    "TLDR; se me rompió el coche, ¿qué hago?",
    "tl;dr my sister's wedding is on a Tuesday, what did she expect?",
    "TLDR: the store was closed, what happened?",
    # a bare question about the user's own affairs
    "tldr how do I renew my passport?",
]

# Real summary requests: text after the command (however it ends), a pointer to a text,
# a topic, or the command alone.
SUMMARY_REQUESTS: list[str] = [
    f"tl;dr: {_PASSAGE}",
    f"TLDR this: {_PASSAGE}",
    f"TL;DR:\n{_NOTES}",
    "TLDR this: the meeting moved to 5 and the room changed. Where is it now?",
    "tl;dr The landlord raises the rent by 5% in July and the lift will be replaced.",
    "tl;dr of this article?",
    "tldr what does the article say?",
    "TL;DR of the thread above, who won the argument?",
    "Give me the gist of the following: the shop closes early on Friday and reopens Monday.",
    "tl;dr the French Revolution?",
    "TL;DR?",
    # a bare question about the text or the conversation (the tester's, then others)
    "tl;dr what did we talk about?",
    "tl;dr what have we covered so far?",
    "tldr what was decided?",
    "TLDR what's the bottom line?",
    "tl;dr what did the paper find?",
    "tl;dr: what does it say?",
    "tl;dr what were the main arguments?",
    "tl;dr: what's the short version?",
    "give me the gist: what happened?",
    "give me the gist, what did they decide?",
    "TL;DR what are the key points?",
    "tl;dr what's the main point?",
    "tldr: what's the takeaway?",
    "TL;DR what matters here?",
    "tl;dr what was the conclusion?",
    "give me the gist: what is it about?",
    "tl;dr who said what?",
    "TLDR what are the main findings?",
    "tl;dr: de quoi ça parle ?",
    "tldr: worum geht es?",
    "tl;dr ¿de qué trata?",
    "TLDR: o que foi decidido?",
    "tl;dr: qual è il punto principale?",
]

# A question is what these commands act on: they route as before.
QUESTIONS_AS_OBJECTS: list[tuple[str, str]] = [
    ("ELI5: how does DNS work?", "explain_simply"),
    ("eli5 why is the sky blue?", "explain_simply"),
    ("proofread: where is it?", "proofread"),
    ("Rephrase: can you send me the report by Friday?", "proofread"),
]

# The user's own TL;DR before a request of another kind: the request is routed alone, as
# if the marker were not there.
ROUTED_ALONE: list[tuple[str, str]] = [
    ("TL;DR: bad day at work, can you tell me a joke?", "joke"),
    ("tldr I have an exam tomorrow, could you quiz me on French verbs?", "quiz"),
    ("tl;dr: moving to Lisbon next month. How do you say 'thank you' in Portuguese?", "translate"),
]

# A command whose object is plainly there, though the classifier finds its concept all but
# impossible (below COMMAND_FLOOR): nothing after it (it acts on what came before), a
# text it names, a question its concept answers, a sentence after "reword:" (route6,
# 2026-11-30, written before the fix).
OBJECT_PRESENT: list[tuple[str, str]] = [
    ("eli5 how do vaccines work?", "explain_simply"),
    ("ELI5 what is a blockchain?", "explain_simply"),
    ("explain like I'm 5 why do cats purr?", "explain_simply"),
    ("eli5: why do we dream?", "explain_simply"),
    ("ELI5 - how does a fridge keep things cold?", "explain_simply"),
    ("tldr of the article above please", "summarise"),
    ("tl;dr of all of the above?", "summarise"),
    ("TLDR", "summarise"),
    ("tl;dr of our conversation so far", "summarise"),
    ("TL;DR of this email, does she say yes?", "summarise"),
    ("reword: I has went to the shop yesterday.", "proofread"),
    ("Reword We was late to the meeting and nobody said nothing.", "proofread"),
    ("proof read: Their going too the store.", "proofread"),
    ("rephrase: why you no answer my email?", "proofread"),
    ("Please reword Me and him is going to the park tomorrow.", "proofread"),
]

# The same words leading something else: a name, the word spoken of, the user's own
# marker before a statement or a question. None may route to the command's concept (what
# follows may route by its meaning: "who was better?" is a comparison).
OBJECT_LOOK_ALIKES: list[tuple[str, str]] = [
    ("Eli5 Manning stats?", "explain_simply"),
    ("Eli5 Manning or Peyton, who was better?", "explain_simply"),
    ("eli5 manning retired in 2020", "explain_simply"),
    ("ELI5 was better before the mods changed, why did it change?", "explain_simply"),
    ("ELI5 is my username, why can't I log in?", "explain_simply"),
    ("Reword is not in my dictionary, is it a real word?", "proofread"),
    ("tl;dr I hate Mondays.", "summarise"),
    ("TL;DR I got fired. Who can help me find a lawyer?", "summarise"),
    ("tldr the meeting moved, when is it now?", "summarise"),
    ("tl;dr: I'm moving to Berlin, what's the weather like there?", "summarise"),
    ("tldr sums up my week honestly", "summarise"),
    ("TLDR: long day", "summarise"),
    ("Rephrase was the wrong button, how do I undo it?", "proofread"),
]

# Look-alikes that route today: the classifier gives the command's concept more than
# COMMAND_FLOOR though no object is plainly there (strict xfails in
# tests/unit/test_routing_meaning.py, to leave when fixed).
ABOVE_FLOOR = {
    "eli5 manning retired in 2020",  # explain_simply 0.044
    "tl;dr I hate Mondays.",  # summarise 0.038
    "tldr sums up my week honestly",  # summarise 0.036
    "TLDR: long day",  # summarise 0.122
}
