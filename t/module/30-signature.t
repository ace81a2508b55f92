# POST: X-Hub-Signature-256, the SHA-1 opt-in, rotation with two secrets
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;

# acl => 0: other stream prefixes than the ACL users' (test-acl)
my $t = WaTest->new(secret => 'my_app_secret', acl => 0);
my $d = $t->dir;
$t->write_file('next', "next_app_secret\n", 0600);
$t->start_redis;
# a location's own list replaces the inherited one, as in nginx's add_header
$t->start_nginx(location => "whatsapp_app_secret_file $d/secret;\n"
                            . "whatsapp_app_secret_file $d/next;",
                server => <<EOF);
        location = /sha1 {
            whatsapp_webhook;
            whatsapp_signature_sha1 on;
            whatsapp_stream_prefix sha1;
        }
EOF

# a vector computed once, apart from the module, byte for byte:
#   printf %s "$body" | openssl dgst -sha256 -hmac my_app_secret
my $vector = '{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Jos\u00e9"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.TEST","timestamp":"1749416383","type":"text","text":{"body":"caf\u00e9 \/ ok"}}]},"field":"messages"}]}]}';
is length $vector, 428, 'vector is 428 bytes';
my $vsig = 'sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834f4aafe37dc2a28804134';

my $r = $t->post($vector, headers => { 'X-Hub-Signature-256' => $vsig });
is $r->{status}, 200, 'test vector: 200';
is $r->{content}, "ok\n", 'body ok';
my @m = $t->stream_events('wa:messages');
is scalar @m, 1, 'one message event';
is $m[0]{msg_id}, 'wamid.TEST', 'msg_id';
is $m[0]{text}, "caf\xc3\xa9 / ok", 'text unescaped to UTF-8';
is $m[0]{profile_name}, "Jos\xc3\xa9", 'profile name';

$r = $t->post($vector, headers => { 'X-Hub-Signature-256' => uc $vsig =~ s/^SHA256/sha256/r });
is $r->{status}, 200, 'upper-case hex accepted';

# bad signatures
$r = $t->post($vector, headers => { 'X-Hub-Signature-256' => undef });
is $r->{status}, 401, 'missing signature: 401';
ok $t->wait_log(qr/X-Hub-Signature-256/), 'log names the missing header';

(my $flipped = $vsig) =~ s/4$/5/;
$r = $t->post($vector, headers => { 'X-Hub-Signature-256' => $flipped });
is $r->{status}, 403, 'one bit off: 403';
ok $t->wait_log(qr/signature.*(match|invalid)/i), 'log says the signature does not match';

for my $bad ('sha256=', 'sha256=xyz', "sha256=" . ('0' x 63), 'md5=abc',
             substr($vsig, 7)) {
    $r = $t->post($vector, headers => { 'X-Hub-Signature-256' => $bad });
    is $r->{status}, 403, "malformed '$bad': 403";
}

$r = $t->post($vector . ' ', headers => { 'X-Hub-Signature-256' => $vsig });
is $r->{status}, 403, 'one byte added to the body: 403';

$r = $t->post($vector, secret => 'someone_else');
is $r->{status}, 403, 'signed with an unknown secret: 403';

# sha1 only when turned on
my $sha1 = 'sha1=8726a8884e8149672b33ca48a030464d39ff4dc6';
$r = $t->post($vector, headers => { 'X-Hub-Signature-256' => undef,
                                    'X-Hub-Signature' => $sha1 });
is $r->{status}, 401, 'sha1 alone where it is off: 401';

$r = $t->post($vector, path => '/sha1',
              headers => { 'X-Hub-Signature-256' => undef,
                           'X-Hub-Signature' => $sha1 });
is $r->{status}, 200, 'sha1 where it is on: 200';
is $t->xlen('sha1:messages'), 1, 'event appended under that location\'s prefix';

$r = $t->post($vector, path => '/sha1',
              headers => { 'X-Hub-Signature-256' => undef,
                           'X-Hub-Signature' => 'sha1=' . ('0' x 40) });
is $r->{status}, 403, 'bad sha1: 403';

# rotation: the second secret is accepted as well, and counted
my $body2 = $vector =~ s/wamid.TEST/wamid.NEXT/r;
$r = $t->post($body2, secret => 'next_app_secret');
is $r->{status}, 200, 'second secret: 200';

my $c = $t->status_counters;
# counters are by position in each location's list: /sha1 counts too
is $c->{secret_1_matched}, 3, 'first secret matched three times';
is $c->{secret_2_matched}, 1, 'second secret matched once';
is $c->{signature_missing}, 2, 'missing counted';
cmp_ok $c->{signature_invalid}, '>=', 8, 'invalid counted';

is $t->xlen('wa:messages'), 2, 'exactly the two authentic messages landed';

# without the secret nothing reaches Redis: no call, no write
my $calls = sub {
    my $info = $t->redis('INFO', 'commandstats') // '';
    my ($n) = $info =~ /cmdstat_fcall:calls=(\d+)/;
    return $n // 0;
};
my $before = $calls->();
for my $i (1 .. 50) {
    $t->post($vector . (' ' x $i), headers => { 'X-Hub-Signature-256' => $vsig });
    $t->post($vector, headers => { 'X-Hub-Signature-256' => undef });
}
is $calls->(), $before, '100 forged or unsigned posts: no Redis call';

my $log = $t->error_log;
unlike $log, qr/my_app_secret|next_app_secret/, 'no secret in the log';

done_testing;
