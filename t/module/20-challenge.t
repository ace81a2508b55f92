# GET: the hub.verify_token challenge
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;

my $t = WaTest->new(token => 'tok en/+&é');
$t->start_redis;
$t->start_nginx;

my $tok = 'tok%20en%2F%2B%26%C3%A9';

my $r = $t->get("/webhook?hub.mode=subscribe&hub.verify_token=$tok"
                . '&hub.challenge=1158201444');
is $r->{status}, 200, 'right token: 200';
is $r->{content}, '1158201444', 'body is the challenge';
like $r->{headers}{'content-type'}, qr{^text/plain}, 'text/plain';
is $r->{headers}{'x-content-type-options'}, 'nosniff',
    'X-Content-Type-Options: nosniff: never read as HTML';

$r = $t->get('/webhook?hub.challenge=42&hub.verify_token=tok+en%2f%2b%26%c3%a9'
             . '&hub.mode=subscribe');
is $r->{status}, 200, "'+' for space, lower-case escapes, any order: 200";
is $r->{content}, '42', 'challenge echoed';

$r = $t->get('/webhook?hub.mode=subscribe&hub.verify_token=tok%20en'
             . '&hub.challenge=1');
is $r->{status}, 403, 'wrong token: 403';
ok $t->wait_log(qr/verify token mismatch|wrong verify token|token/i),
    'log names the cause';

$r = $t->get("/webhook?hub.mode=unsubscribe&hub.verify_token=$tok"
             . '&hub.challenge=1');
is $r->{status}, 403, 'wrong mode: 403';

$r = $t->get("/webhook?hub.verify_token=$tok&hub.challenge=1");
is $r->{status}, 403, 'no mode: 403';

$r = $t->get("/webhook?hub.mode=subscribe&hub.challenge=1");
is $r->{status}, 403, 'no token: 403';

$r = $t->get("/webhook?hub.mode=subscribe&hub.verify_token=$tok");
is $r->{status}, 403, 'no challenge: 403';

$r = $t->get('/webhook');
is $r->{status}, 403, 'bare GET: 403';

$r = $t->{http}->request('PUT', $t->url, { content => '{}' });
is $r->{status}, 405, 'PUT: 405';
like $r->{headers}{allow} // '', qr/GET/, 'Allow names GET';
like $r->{headers}{allow} // '', qr/POST/, 'Allow names POST';

my $c = $t->status_counters;
is $c->{challenge_ok}, 2, 'status: 2 challenges answered';
cmp_ok $c->{challenge_rejected}, '>=', 6, 'status: rejections counted';

# nginx's own context (the request line) is the client's; the module's
# messages must not echo the configured token
my @own = map { /whatsapp webhook: (.*?), client:/ ? $1 : () }
          split /\n/, $t->error_log;
ok scalar(@own), 'module messages found';
ok !(grep { /tok en|tok%20en/ } @own), 'the token never reaches its messages';

done_testing;
