"""The securechat client: API over the stubs, end-to-end messaging, scriptable CLI and chat UI."""
