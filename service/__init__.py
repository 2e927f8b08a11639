"""The use cases every face calls (the page, the Gradio API and MCP, `/v1`, `/kokoro/plan`, the CLI).

A face resolves one `Caller` per request (`service.caller`) and calls a use case here; each use case
that spends compute, memory or disk first asks `service.admission` with the caller and its cost, so a
new way in gets every limit without code of its own. Imports run
`app -> ui/api/cli/serve -> service -> evaluation -> engines`.
"""
