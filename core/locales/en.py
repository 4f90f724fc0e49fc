"""English wording for every frontend."""

MESSAGES: dict[str, str] = {
    # errors: one friendly sentence each
    "error": "Something went wrong on our side. You were not charged.",
    "invalid_request": "That request doesn't work: {reason}.",
    "invalid.prompt_empty": "Please add a prompt, e.g. /imagine a red fox in the snow.",
    "invalid.prompt_too_long": "Your prompt is {length} characters; the limit is {limit}. Nothing was charged.",
    "invalid.option": "I don't understand the option {option}: {why}.",
    "invalid.unknown_option": "I don't know the option {option}. The options are: {flags}.",
    "invalid.option_missing": "The option {option} needs a value. The options are: {flags}.",
    "invalid.option_aspect": "{option} takes a ratio such as 16:9.",
    "invalid.option_resolution": "{option} takes 1K, 2K or 4K.",
    "invalid.option_quality": "{option} takes low, medium or high.",
    "invalid.option_count": "{option} takes a number from 1 to {n_max}.",
    "options.flags": "--ar 16:9, --res 1K/2K/4K, --q low/medium/high, --n 1-{n_max}",
    "invalid.bytes": "That image is too large (the limit is {limit_mb} MB).",
    "invalid.pixels": "That image has too many pixels (the limit is {limit_mp} megapixels).",
    "invalid.format": "That file is not an image I can use (PNG, JPEG or WebP).",
    "invalid.animated": "Animated images can't be edited; please send a still image (PNG, JPEG or WebP).",
    "invalid.count": "That's too many images; the limit is {limit}.",
    "invalid.no_image": "Reply to a message with an image, or attach one, to edit it.",
    "invalid.download": "I couldn't download that image ({reason}).",
    "invalid.public_url": "Editing needs PUBLIC_BASE_URL to be configured for this vendor; please tell the bot's operator.",
    "invalid.generate_unavailable": "This bot's image service only edits images: reply to a photo with an instruction.",
    "invalid.edit_unavailable": "This bot's image service can only make new images, not edit them.",
    "unsupported": "The configured image service can't do that ({option} {value}); it supports: {supported}.",
    "insufficient_credits": "This costs {price} credits but your balance is {balance}. Ask an admin for a top-up.",
    "user_rate_limited": "You're going a bit fast; please wait a minute and try again.",
    "too_many_active_jobs": "You already have {limit} images in progress; please wait for them to finish.",
    "not_admin": "Only the bot's admins can do that.",
    "unknown_user": "I don't know that user yet; use their numeric id or reply to one of their messages.",
    "service_paused": "Image generation is temporarily unavailable. You were not charged.",
    "config_error": "The bot is misconfigured: {reason}",
    "vendor_out_of_credits": "Image generation is temporarily unavailable. You were not charged.",
    "vendor_rejected": "The image service refused this request. You were not charged.",
    "vendor_rejected.code": "The image service refused this request (error {vendor_code}). You were not charged.",
    "vendor_rejected.moderation": "The image service refused this request under its content policy. You were not charged.",
    "vendor_misconfigured": "The image service is misconfigured; the admins have been told. You were not charged.",
    "vendor_busy": "The image service is busy; please try again in a minute. You were not charged.",
    "vendor_unavailable": "The image service failed; sorry! You were not charged.",
    "vendor_error": "The image service failed; sorry! You were not charged.",
    "task_failed": "The image service couldn't make this image. You were not charged.",
    "task_failed.code": "The image service couldn't make this image (error {vendor_code}). You were not charged.",
    "task_failed.moderation": "The image service refused to make this image under its content policy. You were not charged.",
    "task_timed_out": "The image service took too long; sorry! You were not charged.",
    "cannot_resume": "This job was interrupted; you were not charged.",
    "job_interrupted": "Your image job was interrupted by a restart and could not be finished. You were not charged.",
    "job_failed": "Your image job could not be finished. You were not charged.",
    "delivery_partial": "Only {delivered} of {total} images could be posted here; you were charged {cost} credits for those.",
    "delivery_failed": "I made your image but couldn't post it here. You were not charged.",
    # progress
    "status.queued": "⏳ Queued: position {position}.",
    "status.started": "🎨 Working on it… {elapsed}s",
    "status.polling": "🎨 Working on it… {elapsed}s",
    "status.partial": "🖼 Preview {index} · {elapsed}s",
    "status.downloading": "📥 Fetching your image… {elapsed}s",
    # results
    "caption": "{prompt}\n💳 {cost} credits · balance {balance}",
    "caption.revised": "Revised prompt: {revised}",
    # account
    "balance": "Your balance: {balance} credits.",
    "price": "{what} costs {price} credits ({details}). Your balance: {balance}.",
    "price.generate": "This image",
    "price.edit": "This edit",
    "price.affordable": "Press Generate to start.",
    "price.unaffordable": "You need {missing} more credits.",
    "history.header": "Your recent activity:",
    "history.empty": "No activity yet.",
    "history.line": "{when} {amount:+d} {note}",
    "history.kind.charge": "image",
    "history.kind.topup": "top-up",
    "history.kind.grant": "welcome gift",
    "history.kind.deduct": "deduction",
    "history.kind.correction": "correction",
    "history.kind.hold": "on hold",
    "history.kind.failed": "not charged",
    "history.kind.released": "released",
    "options": "{aspect} · {resolution} · {quality} · ×{n}",
    "options.saved": "Saved your defaults: {summary}.",
    "options.language": "Language",
    "welcome": "Hi! I turn words into pictures.\nYour balance: {balance} credits.\n\n{help}",
    "help": (
        "/imagine <prompt> — make an image; add --ar 16:9 --res 2K --q high --n 2 to skip the menu\n"
        "Reply to a photo (or an album) with an instruction to edit it; in groups reply with /edit <instruction>\n"
        "/price <prompt> — what it would cost\n"
        "/balance — your credits · /history — your recent activity\n"
        "/settings — your default size, quality, count and language"
    ),
    "help.discord": (
        "/imagine prompt:… — make an image; pick aspect, resolution, quality and count, or attach images to edit them\n"
        "Right-click a message with an image › Apps › Edit image — edit it\n"
        "/price — what it would cost · /balance — your credits · /history — your recent activity\n"
        "/settings — your default size, quality, count and language"
    ),
    "help.console": (
        "/imagine <prompt> [--ar 16:9 --res 2K --q high --n 2] — make an image\n"
        "/edit PATH [PATH…] <instruction> — edit image files\n"
        "/price <prompt> · /balance · /history · /settings --ar 16:9 --q high lang=zh\n"
        "/topup AMOUNT · /jobs · /resume · /quit"
    ),
    "help.admin.discord": "Admin: /credits topup|set|deduct|show|jobs|resume",
    "help.generate_unavailable": "This bot's image service only edits images: reply to a photo with an instruction.",
    "help.admin": (
        "Admin: /topup <user> <amount> [reason] · /setcredits <user> <amount> [reason] · "
        "/deduct <user> <amount> <reason> · /credits <user> · /jobs · /resume"
    ),
    "help.privacy": "In groups I only see commands and replies to my own messages, so use /edit as a reply there.",
    # buttons
    "button.generate": "✨ Generate · {price} credits",
    "button.cancel": "Cancel",
    "button.reroll": "🔁 Reroll",
    "button.variations": "🎲 Variations",
    "button.edit": "✏️ Edit",
    "button.aspect": "Aspect",
    "button.resolution": "Size",
    "button.quality": "Quality",
    "button.count": "Count",
    "edit.hint": "Reply to the image with what to change, e.g. “make it night”.",
    "edit.modal_title": "Edit image",
    "edit.modal_label": "What should change?",
    "draft.cancelled": "Cancelled.",
    "draft.not_yours": "Only the person who asked can use these buttons.",
    "draft.expired": "This menu has expired; send /imagine again.",
    "invalid.job_not_found": "I can't find that image any more.",
    "invalid.deduct_above_balance": "Cannot deduct {amount} credits: the balance is only {balance} (credits held by running jobs are not available).",
    "throttled": "Slow down a little, please: I will answer again in a few seconds.",
    "invalid.not_yours": "Only the person who made this image can use its buttons.",
    # admin
    "admin.topup_done": "Added {amount} credits to {user}. New balance: {balance}.",
    "admin.set_done": "Set {user}'s balance to {balance}.",
    "admin.deduct_done": "Deducted {amount} credits from {user}. New balance: {balance}.",
    "admin.show": "{user}: balance {balance}, on hold {pending}.",
    "admin.jobs_header": "Recent jobs:",
    "admin.jobs_empty": "No jobs yet.",
    "admin.job_line": "{job} {user} {state} {kind} cost {cost}/{estimate} {error}",
    "admin.resumed": "Vendor pause cleared; jobs are accepted again.",
    "admin.not_paused": "Nothing was paused.",
    "admin.usage": "Usage: {usage}",
    "admin.bad_amount": "The amount must be a whole number of credits.",
    "alert.vendor_out_of_credits": "⚠️ The image vendor answered 402: its account is out of credits. New jobs are paused until you top it up and send /resume (or a probe succeeds).",
    "alert.vendor_misconfigured": "⚠️ The image vendor rejected our configuration ({code}). Check VENDOR_API_KEY, VENDOR_BASE_URL and VENDOR_MODEL.",
    "alert.settle_failed": "Recording the charge for job {job} failed ({error}); the user has the images and I keep retrying. Check the database (disk space, locks).",
    "alert.vendor_recovered": "✅ The image vendor answers again; jobs are accepted.",
    "console.saved": "saved {path}",
    # dashboard
    "stats.caption": "Today (UTC): {jobs} jobs, {charged} credits charged, vendor cost {cost} credits.",
}
