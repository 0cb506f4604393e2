"""Chat bots: the assistant on Telegram and Slack (``assistant bot telegram|slack``).

:mod:`apps.bots.core` holds what both share (commands, turns, busy replies),
:mod:`apps.bots.split` cuts long replies at a platform's limit, and one module per platform
wires its SDK (python-telegram-bot, slack-bolt) to a small Starlette app served by uvicorn.
"""
