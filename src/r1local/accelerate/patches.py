"""Source fixes for llama.cpp builds against older SDK headers, each applied only where needed.

With current SDKs (the LunarG Vulkan SDK, a recent distribution) no fix applies and the sources
build as published.
"""

from __future__ import annotations

from pathlib import Path

from . import toolchain

VULKAN_SOURCE = Path("vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp")
LAYER_SETTINGS_START = "    VkBool32 enable_best_practice = layer_settings;\n"
LAYER_SETTINGS_END = (
    "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, "
    "&layer_setting_info);\n"
)
PLAIN_CREATE_INFO = (
    "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions);\n"
)


def vulkan_headers_lack_layer_settings() -> bool:
    """Vulkan headers before 1.3.268 (Debian 12 ships 1.3.239) do not declare VK_EXT_layer_settings."""
    header = toolchain.find_header("vulkan/vulkan_core.h")
    return header is not None and "VK_EXT_layer_settings" not in Path(header).read_text(errors="replace")


def guard_layer_settings(source_dir: Path) -> str | None:
    """ggml-vulkan.cpp hands the validation layer's settings to vkCreateInstance through
    VK_EXT_layer_settings types; compile that block only where the headers have them, else create
    the instance without (the settings only matter with the validation layer loaded)."""
    path = source_dir / VULKAN_SOURCE
    text = path.read_text()
    start, end = text.find(LAYER_SETTINGS_START), text.find(LAYER_SETTINGS_END)
    if start < 0 or end < start or "#ifdef VK_EXT_layer_settings" in text:
        return None  # another llama.cpp version: nothing of this shape to guard
    end += len(LAYER_SETTINGS_END)
    guarded = f"#ifdef VK_EXT_layer_settings\n{text[start:end]}#else\n{PLAIN_CREATE_INFO}#endif\n"
    path.write_text(text[:start] + guarded + text[end:])
    return f"guarded VK_EXT_layer_settings in {VULKAN_SOURCE.name} (the installed Vulkan headers predate it)"


def apply(source_dir: Path, backend: str) -> list[str]:
    """Apply the fixes this machine's headers need to an unpacked llama-cpp-python sdist; what was
    changed, in words."""
    done = []
    if backend == "vulkan" and vulkan_headers_lack_layer_settings():
        if note := guard_layer_settings(source_dir):
            done.append(note)
    return done
