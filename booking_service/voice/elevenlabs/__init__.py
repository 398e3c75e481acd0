"""ElevenLabs Agents at the edge of the voice pipeline: server ("webhook") tools at
POST /api/elevenlabs/tools/TOOL_NAME, their bearer secret, body, answer and tool configs."""
