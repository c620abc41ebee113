/**
 * The MCP SDK's OAuthClientProvider as a test client keeps it: everything in memory, and a "user agent" that is the
 * fixtures' headless Browser — on redirectToAuthorization it signs the user in and consents through the real pages,
 * then keeps the code from the redirect back to the (never listened-on) loopback redirect URI.
 */
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import type { Browser } from './oauth-fixture.js';

export class BrowserOAuthProvider implements OAuthClientProvider {
  client: OAuthClientInformationMixed | undefined;
  saved: OAuthTokens | undefined;
  private verifier: string | undefined;
  readonly authorizationUrls: URL[] = [];
  /** The code of the last completed authorization. */
  code: string | undefined;
  /** The consent page the last authorization showed (undefined: consent was not asked). */
  consentPage: string | undefined;
  /** When false, an authorization request is only recorded (the user is not there to sign in). */
  interactive = true;
  /** What the SDK asked to forget (it does so when the server refuses a refresh token or the client). */
  readonly invalidated: string[] = [];

  /**
   * @param origin where the Browser's requests say they come from (default: the authorization URL's origin).
   */
  constructor(
    readonly browser: Browser,
    private readonly user: { username: string; password: string },
    private readonly metadata: OAuthClientMetadata & { redirect_uris: [string, ...string[]] },
    private readonly origin?: string,
  ) {}

  get redirectUrl(): string {
    return this.metadata.redirect_uris[0];
  }

  get clientMetadata(): OAuthClientMetadata {
    return this.metadata;
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.client;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.client = info;
  }

  tokens(): OAuthTokens | undefined {
    return this.saved;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.saved = tokens;
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier;
  }

  codeVerifier(): string {
    if (this.verifier === undefined) throw new Error('no PKCE code verifier was saved');
    return this.verifier;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'tokens') this.saved = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
  }

  async redirectToAuthorization(url: URL): Promise<void> {
    this.authorizationUrls.push(url);
    if (!this.interactive) return;
    const done = await this.browser.authorize(url.href, this.origin ?? url.origin, this.user, 'allow');
    this.consentPage = done.consentPage;
    if (!done.location) {
      throw new Error(`sign-in stopped at HTTP ${done.res.status}: ${done.res.text.slice(0, 300)}`);
    }
    const back = new URL(done.location);
    if (`${back.origin}${back.pathname}` !== this.redirectUrl) {
      throw new Error(`authorization redirected to ${back.origin}${back.pathname}, not the client`);
    }
    const code = back.searchParams.get('code');
    if (!code) throw new Error(`authorization returned no code (error=${back.searchParams.get('error')})`);
    this.code = code;
  }
}
