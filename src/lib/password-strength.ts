/**
 * Password strength for self-service signup: `@zxcvbn-ts/core` (a port of Dropbox's
 * zxcvbn, "zxcvbn: Low-Budget Password Strength Estimation", USENIX Security 2016) with the
 * common and English dictionaries, and the signup's own words (slug, name, email) as user
 * inputs, so "acme-corp-2026" is weak for the tenant acme-corp. Scores run 0-4 (log10 of
 * the estimated guesses: 3 means over 10^8, "safely unguessable" against online attacks
 * with throttling, the zxcvbn paper §5); a signup needs {@link MIN_SIGNUP_PASSWORD_SCORE}.
 * The dictionaries (~9 MB on disk) load on the first check, not at start-up.
 */
import { ValidationError } from './errors.js';
import { assertAcceptablePassword } from './passwords.js';

/** Lowest zxcvbn score a signup password may have (0-4). */
export const MIN_SIGNUP_PASSWORD_SCORE = 3;

type Zxcvbn = (password: string, userInputs?: Array<string | number>) => { score: number; feedback: { warning: string | null; suggestions: string[] } };
let loaded: Promise<Zxcvbn> | undefined;

function load(): Promise<Zxcvbn> {
  loaded ??= (async () => {
    const [core, common, en] = await Promise.all([import('@zxcvbn-ts/core'), import('@zxcvbn-ts/language-common'), import('@zxcvbn-ts/language-en')]);
    core.zxcvbnOptions.setOptions({
      dictionary: { ...common.dictionary, ...en.dictionary },
      graphs: common.adjacencyGraphs,
      translations: en.translations,
    });
    return core.zxcvbn;
  })();
  loaded.catch(() => (loaded = undefined));
  return loaded;
}

/**
 * Checks a new password's length (as every password) and its estimated strength.
 * @param userInputs words of the account (email, slug, names): guessing them is cheap
 * @throws ValidationError `VALIDATION_FAILED` (field `password`, with zxcvbn's score, warning and suggestions) when too weak
 */
export async function assertStrongPassword(password: string, userInputs: string[]): Promise<void> {
  try {
    assertAcceptablePassword(password);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(err.message, { fields: [{ path: 'password', message: err.message }] });
    throw err;
  }
  const zxcvbn = await load();
  const words = userInputs.flatMap((w) => [w, ...w.toLowerCase().split(/[^a-z0-9]+/)]).filter((w) => w.length >= 3);
  const r = zxcvbn(password, words);
  if (r.score < MIN_SIGNUP_PASSWORD_SCORE) {
    const hint = [r.feedback.warning, ...r.feedback.suggestions].filter(Boolean).join(' ');
    const message = `password is too easy to guess (strength ${r.score} of 4, at least ${MIN_SIGNUP_PASSWORD_SCORE} needed)${hint ? `: ${hint}` : ''}`;
    throw new ValidationError(message, { fields: [{ path: 'password', message }], score: r.score, minScore: MIN_SIGNUP_PASSWORD_SCORE });
  }
}
