//! HTML message bodies (Microsoft Teams, Matrix `formatted_body`) reduced to
//! plain text with `html2text` (an HTML5 parser, html5ever): tags are never
//! passed through, entities are decoded, `<script>`/`<style>` content is
//! dropped, and block elements become line breaks, so digits in separate
//! paragraphs never run together into one number.

/// Plain text of an HTML fragment, without decoration (`*bold*`, link
/// footnotes) and without wrapping; trailing spaces and blank ends trimmed.
///
/// Two things beyond html2text: a Teams mention `<at id="0">Name</at>`
/// becomes `@Name`, as mentions are written in plain-text chat (the task
/// rules skip `@` words); and non-breaking and other Unicode spaces
/// (`&nbsp;` is common in Teams bodies) become plain spaces, so
/// `943&nbsp;476&nbsp;5919` reads as the NHS number it is.
pub fn to_text(html: &str) -> Result<String, String> {
    let html = mark_images(html);
    let html = mark_mentions(&html);
    // No wrapping: a width above any line length (events are at most 1 MiB).
    let width = html.len().max(80) + 1;
    let text = html2text::config::plain_no_decorate()
        .link_footnotes(false)
        .no_table_borders()
        .string_from_read(html.as_bytes(), width)
        .map_err(|e| format!("is HTML that cannot be read ({e})"))?;
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_whitespace() && c != '\n' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    Ok(lines.join("\n").trim().to_owned())
}

/// An inline image (a Teams `hostedContents` picture, pasted into the body)
/// cannot be carried as text: it is named `[image]` so the record says that
/// something was shown, never an empty or silently shortened message.
fn mark_images(html: &str) -> std::borrow::Cow<'_, str> {
    static IMG: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"(?i)<img\b[^>]*>").expect("valid"));
    IMG.replace_all(html, " [image] ")
}

/// Put `@` at the start of each `<at ...>` element's content.
fn mark_mentions(html: &str) -> std::borrow::Cow<'_, str> {
    let lower = html.to_ascii_lowercase();
    if !lower.contains("<at") {
        return html.into();
    }
    let mut out = String::with_capacity(html.len() + 8);
    let mut from = 0;
    let mut search = 0;
    while let Some(i) = lower[search..].find("<at").map(|i| i + search) {
        let after = lower.as_bytes().get(i + 3).copied();
        search = i + 3;
        if !matches!(after, Some(b'>' | b' ' | b'\t' | b'\n' | b'\r' | b'/')) {
            continue;
        }
        let Some(end) = lower[i..].find('>').map(|e| e + i + 1) else {
            break;
        };
        out.push_str(&html[from..end]);
        if !html[end..].starts_with('@') {
            out.push('@');
        }
        from = end;
        search = end;
    }
    out.push_str(&html[from..]);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn an_inline_image_is_named() {
        let t = to_text("<p>rash on left arm</p><p><img src=\"https://graph.microsoft.com/v1.0/chats/x/messages/1/hostedContents/aWQ=/$value\" alt=\"\"></p>").unwrap();
        assert_eq!(t, "rash on left arm\n\n[image]");
        assert_eq!(to_text("<img src=x>").unwrap(), "[image]");
    }

    #[test]
    fn tags_go_entities_decode_mentions_keep_their_text() {
        let t = to_text(
            "<div><p>Please review <at id=\"0\">Dr Ada Quill</at> &amp; check K&#43; &lt;3.5</p></div>",
        )
        .unwrap();
        assert_eq!(t, "Please review @Dr Ada Quill & check K+ <3.5");
    }

    #[test]
    fn mentions_get_one_at_sign_and_other_tags_starting_with_at_do_not() {
        assert_eq!(
            to_text(
                "<at id=\"0\">Ada</at> and <AT id=1>@Bo</AT> <attachment id=\"9\"></attachment>ok"
            )
            .unwrap(),
            "@Ada and @Bo ok"
        );
    }

    #[test]
    fn non_breaking_spaces_become_spaces_so_numbers_read_whole() {
        assert_eq!(
            to_text("<p>NHS 999&nbsp;412&#8239;0107</p>").unwrap(),
            "NHS 999 412 0107"
        );
    }

    #[test]
    fn scripts_and_styles_are_not_text_and_blocks_do_not_join_digits() {
        let t =
            to_text("<style>p{color:red}</style><script>alert(1)</script><p>943</p><p>4765919</p>")
                .unwrap();
        assert!(!t.contains("alert") && !t.contains("color"), "{t}");
        assert!(!t.contains("9434765919"), "paragraphs must not join: {t}");
        assert!(t.contains("943") && t.contains("4765919"));
    }

    #[test]
    fn inline_markup_inside_a_number_keeps_it_whole_and_long_lines_do_not_wrap() {
        assert_eq!(
            to_text("NHS <b>943</b> 476 5919").unwrap(),
            "NHS 943 476 5919"
        );
        let long = format!("<p>{} 9434765919</p>", "word ".repeat(200));
        assert_eq!(to_text(&long).unwrap().lines().count(), 1);
    }
}
