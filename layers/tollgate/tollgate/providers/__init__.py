"""Provider adapters: one per wire protocol (OpenAI, Anthropic Messages, Bedrock Converse)."""
