// RFC 9110 §5.6.2 `token`: what a header field name (and a method) may be made of.
export const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
