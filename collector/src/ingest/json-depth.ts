/**
 * How deeply an ingest message nests, read from its text in one pass before
 * it is parsed. An event nested 10,000 levels deep is a few tens of
 * kilobytes; 8 MB of them cost seconds to parse and, encoded recursively,
 * far more. Refused here, such a message costs one scan.
 */
import { ValidationError } from '@chaperone/shared';

/**
 * Deepest nesting of objects and arrays an audit event may have. The event's
 * own fields nest at most 4 deep; the rest is room for objects an event may
 * carry (requestObject, responseObject).
 */
export const MAX_EVENT_DEPTH = 64;

/** A batch message wraps its events two levels deep: {"events": [event, …]}. */
const MESSAGE_LEVELS = 2;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

/**
 * Throws a ValidationError when the JSON text nests events deeper than
 * MAX_EVENT_DEPTH: the path names the event (`/events/<index>`, counted from
 * the commas between events), or the message when the nesting is elsewhere.
 * Text that is not JSON is left for the parser to refuse.
 */
export function checkMessageDepth(text: string, maxEventDepth = MAX_EVENT_DEPTH): void {
  const max = maxEventDepth + MESSAGE_LEVELS;
  let depth = 0;
  let inString = false;
  let index = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    switch (c) {
      case QUOTE:
        inString = true;
        break;
      case 0x7b: // {
      case 0x5b: // [
        if (++depth > max)
          throw new ValidationError(
            depth > MESSAGE_LEVELS ? `/events/${index}` : '',
            `objects and arrays nest more than ${maxEventDepth} levels deep; the limit is ${maxEventDepth} (the event was not stored)`,
          );
        break;
      case 0x7d: // }
      case 0x5d: // ]
        depth--;
        break;
      case COMMA:
        if (depth === MESSAGE_LEVELS) index++;
        break;
    }
  }
}
